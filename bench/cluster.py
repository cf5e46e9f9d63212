"""Benchmark: Kinema on PostgreSQL, with standalone workers (`kinema worker`).

Every row has a baseline measured in the same run, on the same machine:

- poll GET of a queued job (every poll reads the database) on PostgreSQL and on SQLite,
  against the bare Starlette route of bench/bare_app.py sending the same bytes;
- pickup latency (queued -> generating, `started_at - created_at` in the jobs table) of
  an idle worker, woken by LISTEN/NOTIFY against polling every 0.2 s;
- throughput of short jobs with 1, 2 and 4 workers draining the same queue;
- poll GET of a queued job with 100,000 finished jobs in the table against an empty one.

Each PostgreSQL run gets a private schema on 127.0.0.1:5432 (KINEMA_TEST_POSTGRES_URL),
dropped at the end; outputs go to local storage in a data directory that the API and
its workers share.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from bench.api import MODEL, PATH, WRK, _load, _row, _start_bare, _start_kinema
from kinema.store.sql import hash_secret
from tests.cluster import PG_URL
from tests.support import TEST_KEY, KinemaServer, MediaServer, make_image

POLL_SECONDS = 8  # wrk -t1 -c16 -d8s (bench.api's CONNECTIONS), after a 1 s warm-up
PICKUP_JOBS = 40
THROUGHPUT_JOBS = 24
WORKER_COUNTS = (1, 2, 4)
STORED_JOBS = 100_000
POLL_INTERVAL = 0.2  # KINEMA_POLL_INTERVAL of the workers (the default)
DB_POLL_SECONDS = 0.01  # how often the benchmark itself looks at the jobs table
JOB_TIMEOUT = 60.0

COMMON_ENV = {
    "KINEMA_ENGINES": "motion",
    "KINEMA_ALLOW_PRIVATE_URLS": "1",
    "KINEMA_MAX_PENDING_PER_KEY": "1000000",
    "KINEMA_POLL_INTERVAL": str(POLL_INTERVAL),
}


# -- PostgreSQL schemas -----------------------------------------------------------------
def _schema(stack: ExitStack) -> str:
    """A fresh schema, dropped when `stack` closes (register it before the processes
    that use it, so they are stopped first); returns its KINEMA_DATABASE_URL."""
    name = "kinema_bench_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    finally:
        admin.dispose()

    def drop() -> None:
        admin = create_engine(PG_URL)
        try:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        finally:
            admin.dispose()

    stack.callback(drop)
    return f"{PG_URL}?options=-csearch_path%3D{name}"


def _engine(stack: ExitStack, url: str) -> Engine:
    engine = create_engine(url)
    stack.callback(engine.dispose)
    return engine


# -- workers ----------------------------------------------------------------------------
class Workers:
    """Standalone `kinema worker` processes, each in its own process group."""

    def __init__(self, stack: ExitStack, db: Engine, data_dir: Path, env: dict[str, str]):
        self.db, self.data_dir, self.env = db, data_dir, env
        self.procs: list[subprocess.Popen[bytes]] = []
        stack.callback(self.stop)

    def start(self, count: int, **env: str) -> None:
        """Start `count` workers and wait until each has registered in the workers table,
        which it does after loading its engines, right before its first claim."""
        for _ in range(count):
            with open(self.data_dir / "worker.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "kinema", "worker"],
                    env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            self.procs.append(proc)
        pids = {p.pid for p in self.procs}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.db.connect() as conn:
                seen = {int(r[0]) for r in conn.execute(text("SELECT pid FROM workers"))}
            if pids <= seen:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.05)
        raise RuntimeError(f"workers did not come up; see {self.data_dir / 'worker.log'}")

    def signal(self, sig: int) -> None:
        for proc in self.procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM (they are idle: they exit at once), SIGKILL after 15 s."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = []


# -- jobs -------------------------------------------------------------------------------
def _submit(client: httpx.Client, body: dict[str, Any]) -> str:
    return str(client.post(PATH, json=body).raise_for_status().json()["id"])


def _times(db: Engine, ids: list[str]) -> list[dict[str, Any]]:
    """status, created_at, started_at, finished_at of `ids` once all are final."""
    query = text(
        "SELECT id, status, error_message, created_at, started_at, finished_at FROM jobs "
        "WHERE id = ANY(:ids)"
    )
    deadline = time.monotonic() + JOB_TIMEOUT + 2 * len(ids)
    while time.monotonic() < deadline:
        with db.connect() as conn:
            rows = [dict(r) for r in conn.execute(query, {"ids": ids}).mappings()]
        if len(rows) == len(ids) and all(r["status"] in ("completed", "error") for r in rows):
            failed = [r["error_message"] for r in rows if r["status"] != "completed"]
            if failed:
                raise RuntimeError(f"{len(failed)} jobs failed: {failed[0]}")
            return rows
        time.sleep(DB_POLL_SECONDS)
    raise RuntimeError(f"{len(ids)} jobs did not finish in time")


def _pickup_ms(client: httpx.Client, db: Engine, body: dict[str, Any]) -> list[float]:
    """Submit jobs one at a time to one idle worker; each is submitted only once the
    previous one is finished, after a random pause (so arrivals do not line up with the
    poll timer). Returns started_at - created_at per job, in ms."""
    rng = random.Random(7)
    latencies = []
    for _ in range(PICKUP_JOBS):
        time.sleep(rng.uniform(0.05, 0.05 + POLL_INTERVAL))
        (row,) = _times(db, [_submit(client, body)])
        latencies.append((row["started_at"] - row["created_at"]) * 1000)
    return latencies


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _drain_rate(
    client: httpx.Client, db: Engine, workers: Workers, body: dict[str, Any], count: int
) -> float:
    """Jobs/s of `count` workers draining THROUGHPUT_JOBS queued jobs. The workers are
    started (engines loaded) and then stopped with SIGSTOP before the jobs are
    submitted, so the clock (SIGCONT -> last finished_at) counts work, not start-up."""
    workers.start(count)
    workers.signal(signal.SIGSTOP)
    try:
        ids = [_submit(client, body) for _ in range(THROUGHPUT_JOBS)]
        start = time.time()
        workers.signal(signal.SIGCONT)
        rows = _times(db, ids)
    finally:
        workers.stop()
    return THROUGHPUT_JOBS / (max(r["finished_at"] for r in rows) - start)


def _add_finished_jobs(db: Engine, queued_id: str) -> None:
    """STORED_JOBS finished jobs (1 in 20 failed) of the bench key, with the queued job's
    model and params, in one INSERT ... SELECT; then ANALYZE, as autovacuum would."""
    with db.begin() as conn:
        key_id = conn.execute(
            text("SELECT id FROM api_keys WHERE key_hash = :h"), {"h": hash_secret(TEST_KEY)}
        ).scalar_one()
        conn.execute(
            text(
                """
                INSERT INTO jobs (id, key_id, route, model, capability, params, status,
                    progress, attempts, max_attempts, price, credits_used, output,
                    error_name, error_message, created_at, started_at, finished_at)
                SELECT 'bench-' || md5(g::text), :key_id, j.route, j.model, j.capability,
                    j.params, CASE WHEN g % 20 = 0 THEN 'error' ELSE 'completed' END,
                    100, 1, j.max_attempts, j.price,
                    CASE WHEN g % 20 = 0 THEN 0 ELSE j.price END,
                    CASE WHEN g % 20 = 0 THEN NULL ELSE json_build_object(
                        'key', 'bench-' || md5(g::text) || '.mp4', 'width', 640,
                        'height', 360, 'duration', 5.0, 'fps', 24, 'size', 480000) END,
                    CASE WHEN g % 20 = 0 THEN 'InvalidInput' END,
                    CASE WHEN g % 20 = 0 THEN 'image_url could not be fetched' END,
                    j.created_at - 200000 + g, j.created_at - 199999 + g,
                    j.created_at - 199998 + g
                FROM jobs AS j, generate_series(1, :n) AS g
                WHERE j.id = :queued
                """
            ),
            {"key_id": key_id, "n": STORED_JOBS, "queued": queued_id},
        )
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE jobs"))
        count = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    if count < STORED_JOBS:
        raise RuntimeError(f"expected {STORED_JOBS} jobs, found {count}")


# -- the benchmark ----------------------------------------------------------------------
def _api(stack: ExitStack, data_dir: Path, **env: str) -> KinemaServer:
    return _start_kinema(stack, data_dir, workers=0, **{**COMMON_ENV, **env})


def run() -> list[dict[str, Any]]:
    label = "" if WRK else " (python client)"
    cores = os.cpu_count() or 1
    key = TEST_KEY
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kinema-bench-")))
        media = MediaServer(tmp / "media")
        stack.callback(media.close)
        small = {"model": MODEL, "prompt": "slow zoom in", "resolution": "360p", "duration": 5,
                 "image_url": media.add("bench.png", make_image(640, 360))}  # fmt: skip

        # 1. Poll of a queued job: PostgreSQL, SQLite, bare Starlette.
        poll_url = _schema(stack)
        poll_db = _engine(stack, poll_url)
        pg = _api(stack, tmp / "pg-poll", KINEMA_DATABASE_URL=poll_url)
        lite = _api(stack, tmp / "sqlite-poll")
        queued = {}
        for name, server in (("pg", pg), ("sqlite", lite)):
            with server.client() as client:
                queued[name] = _submit(client, small)
        with pg.client() as client:
            poll_body = client.get(PATH, params={"generation_id": queued["pg"]}).json()
        bare_url, _ = _start_bare(stack, poll_body)

        def poll(server: KinemaServer, job_id: str) -> dict[str, Any]:
            url = f"{server.base_url}{PATH}?generation_id={job_id}"
            return _load(url, POLL_SECONDS, "GET", "", key, tmp)

        bare = _load(bare_url + "/poll", POLL_SECONDS, "GET", "", key, tmp)
        lite_poll = poll(lite, queued["sqlite"])
        pg_poll = poll(pg, queued["pg"])

        # 4. The same PostgreSQL poll with 100,000 finished jobs in the table (measured
        # right after the empty-store one, so the two share the machine's conditions).
        _add_finished_jobs(poll_db, queued["pg"])
        full_poll = poll(pg, queued["pg"])

        # 2. Pickup latency of one idle worker: NOTIFY vs polling every 0.2 s.
        jobs_url = _schema(stack)
        jobs_db = _engine(stack, jobs_url)
        api = _api(stack, tmp / "pg-jobs", KINEMA_DATABASE_URL=jobs_url)
        worker_env = {**api.env, "KINEMA_DATABASE_URL": jobs_url}
        del worker_env["KINEMA_API_KEY"], worker_env["KINEMA_WORKERS"]
        workers = Workers(stack, jobs_db, tmp / "pg-jobs", worker_env)
        pickup: dict[bool, list[float]] = {}
        client = stack.enter_context(api.client())
        for wakeup in (True, False):
            workers.start(1, KINEMA_JOB_WAKEUP="1" if wakeup else "0")
            try:
                pickup[wakeup] = _pickup_ms(client, jobs_db, small)
            finally:
                workers.stop()

        # 3. Draining short jobs with 1, 2 and 4 workers.
        rates = {n: _drain_rate(client, jobs_db, workers, small, n) for n in WORKER_COUNTS}

    ms = 1e-3
    rows = [
        # No target on PostgreSQL: on one machine the database server shares the cores
        # with the API and the load generator; this row tracks the round trips per poll.
        _row(f"poll GET rps, PostgreSQL{label}", pg_poll["rps"], "req/s", bare["rps"], "—"),
        _row(f"poll GET rps, SQLite{label}", lite_poll["rps"], "req/s", bare["rps"], "≥ 0.5×"),
        _row(
            "pickup median ms, NOTIFY",
            statistics.median(pickup[True]),
            "ms",
            statistics.median(pickup[False]),
            "≤ 100 ms",
        ),
        _row("pickup p99 ms, NOTIFY", _p99(pickup[True]), "ms", _p99(pickup[False]), "—"),
    ]
    for n in WORKER_COUNTS[1:]:
        rows.append(
            _row(
                f"short jobs/s, {n} workers ({cores} cores)",
                rates[n],
                "jobs/s",
                rates[1],
                "≥ 3.5× at 4 (on a machine with the cores)" if n == 4 else "—",
            )
        )
    rows += [
        _row(
            f"poll GET p50 ms, 100k jobs{label}",
            full_poll["p50_us"] * ms,
            "ms",
            pg_poll["p50_us"] * ms,
            "within 10%",
        ),
        _row(f"poll GET rps, 100k jobs{label}", full_poll["rps"], "req/s", pg_poll["rps"], "—"),
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
