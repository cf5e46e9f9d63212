"""Benchmark: webhook delivery throughput, outbox to a local receiver.

N generations each queue one `generation.completed` delivery (through the store's own
`finish`, so the outbox rows are the real ones); then the dispatchers drain the outbox:
claim (one UPDATE … RETURNING per batch), render the payload (the poll body, stored
once), sign (Standard Webhooks), resolve-check-pin-POST under the SSRF policy, record
the attempt. Throughput is deliveries per second until every one is `delivered`, on
SQLite and (when it answers) PostgreSQL, with one dispatcher and with three racing ones
(three store connections, as three processes would have, but in this one process, so they
also share its GIL: that row shows what racing claims cost, not how far it scales out).

The receiver is a separate process (a threaded http.server answering 204), so it does
not share this process's GIL. The baseline row is the same receiver hammered by plain
httpx POSTs from the same number of threads, one connection each (what the dispatcher
does; it keeps no connection alive): the ratio is what the outbox, signing and the SSRF
checks cost on top of the HTTP itself.

    python -m bench.webhooks          # prints the table
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from kinema.jobs.model import Completed, VideoOutput
from kinema.settings import Settings
from kinema.storage import open_storage
from kinema.store import JobStore, NewJob, open_store
from kinema.webhooks.dispatcher import Dispatcher

DELIVERIES = int(os.environ.get("BENCH_WEBHOOKS", "600"))
CONCURRENCY = 8  # the default webhook_concurrency
CAPABILITY = "bench-webhooks"
PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# ---------------------------------------------------------------- the receiver process
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 makes concurrent connects wait for SYN retries
    daemon_threads = True


def _serve(port: Any) -> None:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    port.value = httpd.server_address[1]
    httpd.serve_forever()


def _receiver(stack: ExitStack) -> str:
    context = multiprocessing.get_context("spawn")
    port = context.Value("i", 0)
    process = context.Process(target=_serve, args=(port,), daemon=True)
    process.start()
    stack.callback(process.terminate)
    deadline = time.monotonic() + 30
    while port.value == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port.value}/hook"


# ------------------------------------------------------------------------- the outbox
def _pg_url(stack: ExitStack) -> str | None:
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_URL)
        schema = "kinema_bench_" + secrets.token_hex(4)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception:
        return None

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    stack.callback(drop)
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def _queue(store: JobStore, key_id: str, url: str, count: int) -> None:
    video = VideoOutput("bench", "video/mp4", "v.mp4", 1000, 5.0, 1280, 720, False)
    for _ in range(count):
        new = NewJob(key_id, "unified", "video-01", CAPABILITY, {"prompt": "p"}, 1, 3,
                     webhook_url=url)  # fmt: skip
        store.create_job(new)
        job = store.claim("bench", [CAPABILITY], 60)
        assert job is not None
        store.finish(job.id, "bench", Completed(video, 1))


def _drain(url: str, receiver: str, tmp: Path, dispatchers: int) -> dict[str, float]:
    settings = Settings(
        data_dir=tmp, allow_private_urls=True, webhook_poll_seconds=0.05,
        webhook_concurrency=CONCURRENCY,
    )  # fmt: skip
    store = open_store(url, wakeup=False)
    key, _ = store.create_key(f"bench-{secrets.token_hex(3)}", None)
    _queue(store, key.id, receiver, DELIVERIES)
    stores = [open_store(url, run_migrations=False, wakeup=False) for _ in range(dispatchers)]
    storage = open_storage(settings)
    started = time.perf_counter()
    running = [Dispatcher(s, settings, storage).start() for s in stores]
    try:
        while True:
            left = _pending(store)
            if left == 0:
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        for dispatcher in running:
            dispatcher.stop()
        for s in stores:
            s.close()
    latencies = _latencies(store)
    store.close()
    return {
        "rate": DELIVERIES / seconds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": statistics.quantiles(latencies, n=100)[98],
    }


def _pending(store: JobStore) -> int:
    from sqlalchemy import func, select

    from kinema.store.schema import webhook_deliveries as d

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(
            select(func.count()).select_from(d).where(d.c.status == "pending")
        ).scalar() or 0)  # fmt: skip


def _latencies(store: JobStore) -> list[float]:
    from sqlalchemy import select

    from kinema.store.schema import webhook_attempts as a

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        return [float(v) for v in conn.execute(select(a.c.latency_ms)).scalars()]


def _baseline(receiver: str) -> float:
    """Plain httpx POSTs, CONCURRENCY threads, a new connection per request."""
    body = b'{"type":"generation.completed","data":{}}'
    local = threading.local()

    def one(_: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        local.client.post(receiver, content=body, headers={"content-type": "application/json"})

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(50)))  # warm-up
        started = time.perf_counter()
        list(pool.map(one, range(DELIVERIES)))
        return DELIVERIES / (time.perf_counter() - started)


def _row(name: str, value: float, unit: str, baseline: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"benchmark": name, "value": f"{value:.0f}", "unit": unit}
    if baseline:
        row["baseline"] = f"{baseline:.0f}"
        row["ratio"] = f"{value / baseline:.2f}"
    row["target"] = "—"
    return row


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kinema-bench-")))
        receiver = _receiver(stack)
        baseline = _baseline(receiver)
        backends = [("SQLite", f"sqlite:///{tmp / 'bench.db'}")]
        pg = _pg_url(stack)
        if pg is not None:
            backends.append(("PostgreSQL", pg))
        for name, url in backends:
            for count in (1, 3):
                result = _drain(url, receiver, tmp, count)
                label = f"webhook deliveries, {name}, {count} dispatcher{'s' * (count > 1)}"
                rows.append(_row(label, result["rate"], "deliveries/s", baseline))
                rows.append(
                    _row(f"{label}: attempt p50 / p99", result["p50_ms"], "ms")
                    | {"value": f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f}"}
                )
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(f"bench.webhooks: {DELIVERIES} deliveries per row ...", file=sys.stderr, flush=True)
    print(table(run()))
