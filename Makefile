# Kinema: the two commands are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test check bench chaos fuzz install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime install: the service plus the local CPU engines' dependencies. `kinema setup`
# adds what an extra cannot: the mediapipe 0.10.21 wheel, without its dependencies, for
# the face-landmark model files it bundles (Kinema never imports mediapipe).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engines,postgres,s3]'
	$(BIN)/kinema setup --quiet
	touch $@

# Dev install: everything above plus the test and lint tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engines,postgres,s3,dev,diffusers]'
	$(BIN)/kinema setup --quiet
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

serve: $(VENV)/.installed
	$(BIN)/kinema serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed
	@scripts/ensure-postgres
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src/kinema

# The HTTP benchmarks drive load with wrk (a Debian package) when it can be installed.
bench: $(VENV)/.dev-installed
	@command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1) \
	  || echo "bench: wrk is not installed; using the Python load generator"
	$(BIN)/python -m bench

# 2 APIs + 3 workers on PostgreSQL + S3 (moto): 200 jobs round-robin, 20 worker SIGKILLs,
# database connections killed under load.
chaos: $(VENV)/.dev-installed
	@scripts/ensure-postgres
	$(BIN)/python -m tests.cluster --jobs 200 --kills 20

# Schemathesis against a live `kinema serve`: every phase, --checks all, thousands of cases
# (`make test` runs the same at 100 examples per operation and a fixed seed).
FUZZ_EXAMPLES ?= 1000
FUZZ_SEED ?= random
fuzz: $(VENV)/.dev-installed
	KINEMA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KINEMA_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/python -m pytest -q -s --timeout=0 tests/test_schemathesis.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .kinema .pytest_cache .mypy_cache .ruff_cache
