"""Benchmark: live event streams (`GET /v2/video/generations/events`) on one API process.

`python -m bench.sse [--streams 500] [--rounds 6] [--postgres]` prints a table.

- Kinema: `kinema serve --workers 0` on SQLite (and PostgreSQL with `--postgres`), with
  STREAMS jobs and one open stream per job. A separate process plays the worker: it
  claims every job, then writes ROUNDS progress steps to each through the job store
  (`JobQueue.heartbeat`, exactly what a worker does), spread evenly over the round, and
  notes when each write began.
- Baseline: a bare Starlette SSE endpoint on the same uvicorn config (this module, run
  with `--bare-server`), where the "write" is a POST that hands the event straight to the
  stream's in-memory queue: the transport's own cost, with no store in between.

Measured: the server's RSS growth per open stream (RSS with all streams open and
delivering, minus RSS after a warm-up, over the number of streams), and the latency from
the start of a progress write to its event being parsed by the client (p50/p99). The
clients are raw asyncio sockets in this process (a small HTTP/1.1 chunked + SSE parser),
so their own cost stays small. Kinema's latency is dominated by its store poll interval
(`kinema.api.events.LOCAL_POLL_SECONDS` / `REMOTE_POLL_SECONDS`: one query per interval
per API process, whatever the number of streams).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, suppress
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support import TEST_KEY, KinemaServer, free_port

STREAMS = 500
ROUNDS = 6
ROUND_SECONDS = 2.0
EVENTS = "/v2/video/generations/events"
PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CAPABILITY = "image-to-video"
# What the baseline sends as `data:`: a poll body of the same shape and size.
BARE_DATA = {
    "id": "x" * 20, "status": "generating", "model": "pixverse/v5/image-to-video",
    "video": None, "error": None, "meta": {"usage": {"credits_used": 60000}},
    "progress": 0, "queue_position": 0,
}  # fmt: skip


# -- the baseline server ----------------------------------------------------------------
def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    queues: dict[str, asyncio.Queue[int]] = {}

    def frame(number: int, kind: str, progress: int) -> bytes:
        data = json.dumps({**BARE_DATA, "progress": progress}, separators=(",", ":"))
        return f"id: {number}\nevent: {kind}\ndata: {data}\n\n".encode()

    async def events(request: Request) -> StreamingResponse:
        job = request.query_params["generation_id"]
        queue = queues[job] = asyncio.Queue()

        async def body() -> Any:
            yield frame(1, "status", 0)
            number = 1
            try:
                while True:
                    progress = await queue.get()
                    number += 1
                    yield frame(number, "progress", progress)
            finally:
                queues.pop(job, None)

        return StreamingResponse(body(), media_type="text/event-stream")

    async def fire(request: Request) -> Response:
        sent = await request.json()
        queues[sent["job"]].put_nowait(sent["progress"])
        return Response(status_code=204)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route(EVENTS, events), Route("/fire", fire, methods=["POST"]),
                Route("/health", health)]
    )  # fmt: skip


def serve_bare(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        bare_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    uvicorn.Server(config).run()


# -- the writer (a separate process) ---------------------------------------------------------
def write_progress(
    target: str, job_ids: list[str], rounds: int, round_seconds: float
) -> list[tuple[str, int, float]]:
    """Write `rounds` progress steps to every job, paced evenly; (job, progress, time the
    write began) for each. `target`: a database URL (a worker's writes) or the bare
    server's base URL (a POST that hands the event to the stream)."""
    written: list[tuple[str, int, float]] = []
    if target.startswith("http"):
        client = httpx.Client(base_url=target)

        def write(job_id: str, progress: int) -> None:
            client.post("/fire", json={"job": job_id, "progress": progress}).raise_for_status()

    else:
        from kinema.store import open_store

        store = open_store(target, run_migrations=False, wakeup=False)
        worker = "bench-" + secrets.token_hex(3)
        claimed = 0
        began = time.monotonic()
        while claimed < len(job_ids) and store.claim(worker, [CAPABILITY], 3600) is not None:
            claimed += 1
        _note(f"{claimed} jobs claimed", began)

        def write(job_id: str, progress: int) -> None:
            if not store.heartbeat(job_id, worker, 3600, progress):
                raise RuntimeError(f"job {job_id} is not the bench worker's")

    time.sleep(1.0)  # the claims' status events reach the clients first
    gap = round_seconds / len(job_ids)
    for step in range(1, rounds + 1):
        order = list(job_ids)
        random.shuffle(order)
        start = time.monotonic()
        for i, job_id in enumerate(order):
            delay = start + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            began = time.time()  # latency counts from the start of the write
            write(job_id, 5 * step)
            written.append((job_id, 5 * step, began))
    return written


# -- the clients ---------------------------------------------------------------------------
class Client:
    """One SSE stream over a raw socket: HTTP/1.1, chunked transfer, SSE frames."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.received: dict[int, float] = {}  # progress -> when its event was parsed
        self.first = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, key: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer = writer
        writer.write(
            f"GET {EVENTS}?generation_id={self.job_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        buffer = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                self.parse(block)

    def parse(self, block: bytes) -> None:
        fields = dict(
            line.split(b": ", 1) for line in block.split(b"\n") if not line.startswith(b":")
        )
        if b"data" not in fields:
            return
        now = time.time()
        self.first.set()
        if fields.get(b"event") == b"progress":
            self.received[json.loads(fields[b"data"])["progress"]] = now

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


async def _measure(
    port: int, process: psutil.Process, key: str, job_ids: list[str], target: str, rounds: int
) -> dict[str, Any]:
    began = time.monotonic()
    # Warm-up: a few streams open and close, so lazily built state is not counted.
    warm = [Client(job_id) for job_id in job_ids[:5]]
    for client in warm:
        client.task = asyncio.create_task(client.run(port, key))
    await asyncio.wait_for(asyncio.gather(*(c.first.wait() for c in warm)), 30)
    for client in warm:
        client.close()
    await asyncio.sleep(1.0)
    before = process.memory_info().rss

    clients = [Client(job_id) for job_id in job_ids]
    for i in range(0, len(clients), 50):  # connect in batches, like clients arriving
        for client in clients[i : i + 50]:
            client.task = asyncio.create_task(client.run(port, key))
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(c.first.wait() for c in clients)), 60)
    failed = [c.task for c in clients if c.task is not None and c.task.done()]
    for task in failed:
        task.result()  # a refused or broken stream raises here
    began = _note(f"{len(clients)} streams open", began)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(pool, write_progress, target, job_ids, rounds, ROUND_SECONDS)
        peak = process.memory_info().rss
        while not future.done():
            await asyncio.sleep(0.25)
            peak = max(peak, process.memory_info().rss)
        written = await future
    began = _note(f"{len(written)} progress writes", began)
    await asyncio.sleep(1.0)  # the last events arrive
    by_job = {client.job_id: client for client in clients}
    latencies, missing = [], 0
    for job_id, progress, began in written:
        seen = by_job[job_id].received.get(progress)
        if seen is None:
            missing += 1
        else:
            latencies.append(seen - began)
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)
    return {
        "per_stream": (peak - before) / len(clients),
        "latencies": latencies,
        "missing": missing,
        "events": len(written),
    }


def _note(what: str, since: float) -> float:
    print(f"bench.sse: {what} in {time.monotonic() - since:.1f} s", file=sys.stderr, flush=True)
    return time.monotonic()


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


# -- the runs ---------------------------------------------------------------------------
def _kinema(stack: ExitStack, tmp: Path, streams: int, rounds: int, pg: bool) -> dict[str, Any]:
    from kinema.store import NewJob, open_store

    env = {"KINEMA_MAX_STREAMS_PER_KEY": str(streams + 10),
           "KINEMA_MAX_PENDING_PER_KEY": str(streams * 10), "KINEMA_ENGINES": "motion"}  # fmt: skip
    name = "postgres" if pg else "sqlite"
    if pg:
        from sqlalchemy import create_engine, text

        schema = "kinema_bench_sse_" + secrets.token_hex(4)
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

        stack.callback(drop)
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env["KINEMA_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{(tmp / name / 'kinema.db').resolve()}"
    server = KinemaServer(tmp / name, workers=0, **env)
    stack.callback(lambda: server.proc is not None and server.stop(timeout=15))
    began = time.monotonic()
    server.start()
    began = _note(f"kinema serve ({name}) up", began)
    store = open_store(url, run_migrations=False, wakeup=False)
    key = store.authenticate(TEST_KEY)
    assert key is not None
    job_ids = [
        store.create_job(
            NewJob(key.id, "unified", "video-01", CAPABILITY, {"prompt": "p"}, 1, 3)
        ).id
        for _ in range(streams)
    ]
    store.close()
    _note(f"{streams} jobs created", began)
    process = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    return asyncio.run(_measure(server.port, process, TEST_KEY, job_ids, url, rounds))


def _bare(stack: ExitStack, streams: int, rounds: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sse", "--bare-server", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the bare SSE server did not come up")
        time.sleep(0.1)
    job_ids = [f"bare-{i}" for i in range(streams)]
    return asyncio.run(_measure(port, psutil.Process(proc.pid), TEST_KEY, job_ids, base, rounds))


def _rows(label: str, result: dict[str, Any], base: dict[str, Any], streams: int) -> list[Any]:
    ms, kb = 1000.0, 1024.0
    rows = []
    for name, value, baseline, unit in (
        ("RSS per open stream", result["per_stream"] / kb, base["per_stream"] / kb, "KiB"),
        ("progress -> client p50", _quantile(result["latencies"], 0.5) * ms,
         _quantile(base["latencies"], 0.5) * ms, "ms"),
        ("progress -> client p99", _quantile(result["latencies"], 0.99) * ms,
         _quantile(base["latencies"], 0.99) * ms, "ms"),
    ):  # fmt: skip
        rows.append({
            "benchmark": f"SSE {name}, {streams} streams, {label}",
            "value": round(value, 1), "unit": unit, "baseline": round(baseline, 1),
            "ratio": round(value / baseline, 1) if baseline > 0 else "",
            "target": "—",
        })  # fmt: skip
    rows.append({
        "benchmark": f"SSE events delivered, {label}",
        "value": result["events"] - result["missing"], "unit": "events",
        "baseline": base["events"] - base["missing"], "ratio": "",
        "target": f"all {result['events']}",
    })  # fmt: skip
    return rows


def run(streams: int = STREAMS, rounds: int = ROUNDS, postgres: bool = False) -> list[Any]:
    _raise_fd_limit()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kinema-sse-")))
        base = _bare(stack, streams, rounds)
        rows = _rows("SQLite", _kinema(stack, tmp, streams, rounds, pg=False), base, streams)
        if postgres:
            rows += _rows("PostgreSQL", _kinema(stack, tmp, streams, rounds, True), base, streams)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sse", description=__doc__)
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(args.port)
        return
    from bench.__main__ import table

    print(table(run(args.streams, args.rounds, args.postgres)))


if __name__ == "__main__":
    main()
