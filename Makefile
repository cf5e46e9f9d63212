# Kinema: the two commands are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test check bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime install: the service plus the default CPU engine's dependencies.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engines,postgres]'
	touch $@

# Dev install: everything above plus the test and lint tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engines,postgres,dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

serve: $(VENV)/.installed
	$(BIN)/kinema serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed
	@scripts/ensure-postgres
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/kinema

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .kinema .pytest_cache .mypy_cache .ruff_cache
