"""Benchmark: how soon an idle worker starts a submitted job (pickup), with the wake-up
(KINEMA_JOB_WAKEUP, the default) against polling alone (KINEMA_JOB_WAKEUP=0, a claim
every KINEMA_POLL_INTERVAL = 0.2 s) measured in the same run, on SQLite and PostgreSQL.

Each measure is a real `kinema serve` with one embedded worker. Jobs are submitted one at
a time over HTTP, each after the previous one finished plus a random pause (so arrivals
do not line up with the poll timer). Pickup is `started_at - created_at` of the job row:
from the submit's insert to the worker's claim, both stamped by `time.time()` on this
machine. The submit's response reaches the client a little after `created_at`, so a
user sees at most that much (the row also gives response -> started, for reference).
Every job asks for an image that the media server answers with 404, so it fails within
milliseconds of its start and the worker is idle again for the next one.

PostgreSQL runs on 127.0.0.1:5432 (KINEMA_TEST_POSTGRES_URL; scripts/ensure-postgres
starts it), in a private schema dropped at the end.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from bench.api import MODEL, PATH, _row, _start_kinema
from tests.support import MediaServer

ROOT = Path(__file__).resolve().parent.parent
JOBS = 60  # per measure; p99 of 60 is close to the worst one
POLL_INTERVAL = 0.2  # the default KINEMA_POLL_INTERVAL
DB_POLL_SECONDS = 0.005  # how often the benchmark looks at the jobs table
JOB_TIMEOUT = 30.0
QUERY = text("SELECT status, created_at, started_at FROM jobs WHERE id = :id")


def _done(db: Engine, job_id: str) -> tuple[float, float]:
    """created_at and started_at of `job_id` once it has ended."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        with db.connect() as conn:
            row = conn.execute(QUERY, {"id": job_id}).mappings().first()
        if row is not None and row["status"] in ("completed", "error"):
            return float(row["created_at"]), float(row["started_at"])
        time.sleep(DB_POLL_SECONDS)
    raise RuntimeError(f"job {job_id} did not end in {JOB_TIMEOUT} s")


def _measure(
    data_dir: Path, db_url: str | None, body: dict[str, Any], wakeup: bool
) -> tuple[list[float], list[float]]:
    """(created -> started, response -> started) in ms for JOBS jobs, one at a time."""
    env = {
        "KINEMA_ENGINES": "motion",
        "KINEMA_POLL_INTERVAL": str(POLL_INTERVAL),
        "KINEMA_JOB_WAKEUP": "1" if wakeup else "0",
        "KINEMA_MAX_PENDING_PER_KEY": "1000000",
    }
    if db_url is not None:
        env["KINEMA_DATABASE_URL"] = db_url
    with ExitStack() as local:
        since = time.time()
        server = _start_kinema(local, data_dir, workers=1, **env)
        url = db_url or f"sqlite:///{(data_dir / 'kinema.db').resolve()}"
        db = create_engine(url)
        local.callback(db.dispose)
        client = local.enter_context(server.client())
        _wait_for_worker(db, since)
        rng = random.Random(7)
        queued, answered = [], []
        for index in range(JOBS + 1):
            time.sleep(rng.uniform(0.05, 0.05 + POLL_INTERVAL))
            response = client.post(PATH, json=body)
            replied = time.time()
            job_id = str(response.raise_for_status().json()["id"])
            created, started = _done(db, job_id)
            if index:  # the first one warms up the worker's first claim and fetch
                queued.append((started - created) * 1000)
                answered.append((started - replied) * 1000)
    return queued, answered


def _wait_for_worker(db: Engine, since: float) -> None:
    """Until the worker registered (it does so after loading, before its first claim)."""
    query = text("SELECT count(*) FROM workers WHERE started_at >= :since")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with db.connect() as conn:
            if conn.execute(query, {"since": since}).scalar_one():
                return
        time.sleep(0.05)
    raise RuntimeError("the embedded worker did not come up")


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _postgres_url(stack: ExitStack) -> str | None:
    from bench.cluster import _schema
    from tests.cluster import PG_URL

    # Start the machine's cluster if it is installed but down (as `make test` does).
    subprocess.run([str(ROOT / "scripts" / "ensure-postgres")], check=False, timeout=60)
    try:
        probe = create_engine(PG_URL)
        with probe.connect():
            pass
        probe.dispose()
    except Exception:
        return None
    return _schema(stack)


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kinema-pickup-")))
        media = MediaServer(tmp / "media")
        stack.callback(media.close)
        body = {"model": MODEL, "prompt": "slow zoom in", "resolution": "360p", "duration": 5,
                "image_url": f"{media.base}/missing.png"}  # fmt: skip
        pg_url = _postgres_url(stack)
        backends: list[tuple[str, str | None]] = [("SQLite", None)]
        if pg_url is not None:
            backends.append(("PostgreSQL", pg_url))
        for name, url in backends:
            results = {}
            for wakeup in (True, False):
                run_dir = tmp / f"{name}-{wakeup}"
                results[wakeup] = _measure(run_dir, url, body, wakeup)
            (woken, replied), (polled, _) = results[True], results[False]
            rows += [
                _row(
                    f"pickup p50 ms, {name}, wake-up vs 0.2 s poll",
                    statistics.median(woken), "ms", statistics.median(polled),
                    "≤ 20 ms" if name == "SQLite" else "—",
                ),
                _row(
                    f"pickup p99 ms, {name}, wake-up vs 0.2 s poll",
                    _p99(woken), "ms", _p99(polled), "—",
                ),
                {
                    "benchmark": f"pickup p50 ms, {name}, submit response -> started",
                    "value": round(statistics.median(replied), 2), "unit": "ms",
                    "target": "informational (< 0: started before the response arrived)",
                },
            ]  # fmt: skip
        if pg_url is None:
            rows.append({"benchmark": "pickup, PostgreSQL", "value": "skipped",
                         "target": "PostgreSQL not reachable on 127.0.0.1:5432"})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
