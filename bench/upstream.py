"""`python -m bench.upstream`: hundreds of concurrent upstream jobs in ONE worker process.

A fal-queue-like fake provider (below, in its own process so its CPU is not counted)
completes each job `--seconds` (+ up to SPREAD, at random) after its submit. Kinema runs
as it does in production: the API (over ASGI) and one worker running its real claim loop (SQLite,
wake-ups on), the upstream jobs waited on by the worker's asyncio loop. The jobs are
submitted at an even rate over `--ramp` seconds (providers' latencies vary, so real
completions spread out too); with `--seconds` > `--ramp` all of them are waiting at once.

Measured, in the worker process:
- CPU while all wait: process CPU seconds / wall seconds from "the provider has every
  job" to just before the first completes (target < 5 % of one core); baseline: the same
  process idle (worker running, no job) in the same run. RSS likewise.
- Overhead per job: (Kinema's submit -> completed, as the client sees it: from just before
  its POST to the job's `finished_at`) - (the provider's own submit -> done latency), median
  and p95 (target < 50 ms); split into poll lag (provider done -> Kinema's poll saw it)
  and mirror (saw it -> completed: result, download, PyAV check, storage, finish).

Three scenarios: `eta`, a provider that says when to ask again (`Retry-After` with the
time left, on the submit and on "still running" answers); `interval`, one that says
nothing, polled at the fal kind's recommended 2 s (poll lag is then about half the
interval by construction, and CPU is polls/s x the CPU cost of one httpx poll);
`capped`, the same with the upstream's `max_polls_per_second` = CAP (CPU bounded, each
job polled less often as more wait).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

JOBS = 200
LATENCY = 50.0  # the provider's own submit -> done, per job (+ up to SPREAD)
RAMP = 40.0  # submitted evenly over this: 5 completions/s, each mirrored (posters: CPU)
SPREAD = 1.0  # each job's latency is LATENCY + uniform(0, SPREAD): not in step with polls
IDLE = 3.0  # the idle baseline window
SCENARIOS = ("eta", "interval", "capped")
CAP = 10.0  # `max_polls_per_second` of the "capped" scenario
KEY = "fal-bench-key-0123456789"
APP = "fal-ai/minimax/video-01"


# ---- the fake provider (its own process) -----------------------------------------------
class _Queue:
    def __init__(self, video: bytes, latency: float, hint: bool) -> None:
        self.video, self.latency, self.hint = video, latency, hint
        self.created: dict[str, float] = {}  # job id -> submit time (wall clock)
        self.due: dict[str, float] = {}  # job id -> when it is done
        self.seen_done: dict[str, float] = {}  # job id -> first "COMPLETED" answer
        self.lock = threading.Lock()


def _handler(queue: _Queue) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without TCP_NODELAY, Nagle + delayed
        # ACKs would add ~40 ms to every answer, the fake's cost, not Kinema's.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, left: float | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4" if isinstance(body, bytes) else
                             "application/json")  # fmt: skip
            self.send_header("Content-Length", str(len(data)))
            if left is not None and queue.hint:  # "ask again when it should be done"
                self.send_header("Retry-After", f"{max(0.0, left):.3f}")
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Key {KEY}":
                self._send(401, {"detail": "bad key"})
                return False
            return True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self._authorized():
                return
            job_id = uuid.uuid4().hex
            own = queue.latency + random.uniform(0, SPREAD)  # this job's own latency
            with queue.lock:
                queue.created[job_id] = now = time.time()
                queue.due[job_id] = now + own
            root = f"http://{self.headers['Host']}/fal-ai/minimax/requests/{job_id}"
            self._send(200, {"request_id": job_id, "status": "IN_QUEUE", "queue_position": 0,
                             "status_url": f"{root}/status", "response_url": root,
                             "cancel_url": f"{root}/cancel"}, own)  # fmt: skip

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts[0] == "files":
                self._send(200, queue.video)
                return
            if not self._authorized():
                return
            due = queue.due.get(parts[3]) if len(parts) >= 4 else None
            if due is None:
                self._send(404, {"detail": "Request not found"})
                return
            left = due - time.time()
            if len(parts) == 5 and left > 0:
                self._send(202, {"status": "IN_PROGRESS", "queue_position": 0}, left)
            elif len(parts) == 5:
                with queue.lock:
                    queue.seen_done.setdefault(parts[3], time.time())
                self._send(200, {"status": "COMPLETED", "metrics": {"inference_time": 1.0}})
            else:
                url = f"http://{self.headers['Host']}/files/{parts[3]}"
                self._send(200, {"video": {"url": url, "content_type": "video/mp4"}})

        def do_PUT(self) -> None:
            self._send(202, {"status": "CANCELLATION_REQUESTED"})

    return Handler


def _serve(conn: Connection, video: bytes, latency: float, hint: bool) -> None:
    queue = _Queue(video, latency, hint)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(queue))
    server.daemon_threads = True
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(f"http://127.0.0.1:{server.server_address[1]}")
    while (ask := conn.recv()) != "stop":
        with queue.lock:
            conn.send(len(queue.created) if ask == "count" else
                      {"created": dict(queue.created), "due": dict(queue.due),
                       "seen": dict(queue.seen_done)})  # fmt: skip
    server.shutdown()


# ---- measuring ----------------------------------------------------------------------------
def _clip(work: Path) -> bytes:
    """What the provider returns: a 1 s 720p test card (Kinema mirrors and checks it)."""
    from kinema.engines.testcard import TestcardEngine
    from kinema.render_request import TEXT_TO_VIDEO, RenderRequest
    from kinema.testing import FakeContext

    work.mkdir(parents=True, exist_ok=True)
    ctx = FakeContext(work)
    request = RenderRequest(model="video-01", capability=TEXT_TO_VIDEO, prompt="x", duration=1)
    TestcardEngine().generate(request, ctx)
    return ctx.output_path.read_bytes()


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _cpu_pct(seconds: float) -> float:
    cpu0, wall0 = _cpu(), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu() - cpu0) / (time.monotonic() - wall0)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def scenario(
    root: Path, video: bytes, hint: str, jobs: int, latency: float, ramp: float
) -> dict[str, Any]:
    from kinema.api.app import create_app
    from kinema.providers.runner import upstream_state
    from kinema.settings import Settings
    from kinema.storage import open_storage
    from kinema.store import open_store
    from kinema.testing.harness import BASE_URL, TEST_KEY, SyncASGITransport
    from kinema.worker import Worker

    parent, child = mp.Pipe()
    fake = mp.get_context("spawn").Process(
        target=_serve, args=(child, video, latency, hint == "eta"), daemon=True
    )
    fake.start()
    base_url = parent.recv()
    os.environ["KINEMA_BENCH_FAL_KEY"] = KEY
    settings = Settings(
        data_dir=root, api_key=TEST_KEY, allow_private_urls=True, workers=0, lease_seconds=30,
        upstreams={"fal": {"kind": "fal", "base_url": base_url, "concurrency": jobs,
                           "api_key_env": "KINEMA_BENCH_FAL_KEY",
                           "max_polls_per_second": CAP if hint == "capped" else None}},
        routes={"video-01": ["fal"]},
    )  # fmt: skip
    store = open_store(settings.resolved_database_url, wakeup=True)
    storage = open_storage(settings)
    app = create_app(settings, store, storage)
    worker = Worker(settings, store, storage)
    runner = threading.Thread(target=worker.run, name="bench-worker", daemon=True)
    runner.start()
    client = httpx_client(SyncASGITransport(app), BASE_URL, TEST_KEY)
    try:
        body = {"model": "video-01", "prompt": "A lighthouse at dusk"}
        _wait_until(lambda: worker.loaded, 60)
        idle_cpu, idle_rss = _cpu_pct(IDLE), _rss_mib()  # the worker running, no job
        parent.send("count")
        before = parent.recv()
        submitted: dict[str, float] = {}
        start = time.monotonic()
        for i in range(jobs):
            time.sleep(max(0.0, start + i * ramp / jobs - time.monotonic()))
            sent = time.time()
            answer = client.post("/v2/video/generations", json=body)
            submitted[answer.json()["id"]] = sent
        first_done = min(submitted.values()) + latency
        # Waiting: from "the provider has every job" to just before the first completes.
        while True:
            parent.send("count")
            if parent.recv() - before >= jobs or time.time() > first_done - 1.0:
                break
            time.sleep(0.1)
        window = first_done - 0.2 - time.time()
        cpu = _cpu_pct(window) if window > 0.5 else float("nan")
        rss = _rss_mib()
        _wait_until(lambda: _all_finished(store, submitted), latency + ramp + 300)
        parent.send("report")
        report = parent.recv()
    finally:
        worker.stop.set()
        worker.hard_stop.set()
        runner.join(timeout=10)
        client.close()
        parent.send("stop")
        fake.join(timeout=5)
        if fake.is_alive():
            fake.terminate()
    overhead, lag, mirror, own, total, failed = [], [], [], [], [], 0
    for gen_id, sent in submitted.items():
        job = store.get_job(gen_id)
        state = upstream_state(job) if job is not None else None
        if (
            job is None
            or state is None
            or str(job.status) != "completed"
            or job.finished_at is None
        ):
            failed += 1
            continue
        upstream_id = str(state["id"])
        created, due = report["created"][upstream_id], report["due"][upstream_id]
        seen = report["seen"][upstream_id]
        own.append(due - created)  # the provider's own submit -> done
        overhead.append((job.finished_at - sent - (due - created)) * 1000)
        total.append((job.finished_at - sent) * 1000)
        lag.append((seen - due) * 1000)
        mirror.append((job.finished_at - seen) * 1000)
    store.close()
    return {"cpu": cpu, "rss": rss, "idle_cpu": idle_cpu, "idle_rss": idle_rss,
            "overhead": overhead, "lag": lag, "mirror": mirror, "failed": failed,
            "own": own, "total": total}  # fmt: skip


def httpx_client(transport: Any, base_url: str, key: str) -> Any:
    import httpx

    return httpx.Client(
        transport=transport, base_url=base_url, headers={"Authorization": f"Bearer {key}"}
    )


def _all_finished(store: Any, ids: dict[str, float]) -> bool:
    return all((job := store.get_job(i)) is not None and job.finished_at for i in ids)


def _wait_until(done: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the benchmark did not finish within {seconds:g} s")
        time.sleep(0.25)


def run(
    jobs: int = JOBS,
    latency: float = LATENCY,
    ramp: float = RAMP,
    scenarios: tuple[str, ...] = SCENARIOS,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        video = _clip(Path(tmp) / "clip")
        for hint in scenarios:
            r = scenario(Path(tmp) / hint, video, hint, jobs, latency, ramp)
            name = f"upstream[{hint}]"
            med = _median(r["overhead"])
            kinema, provider = _median(r["total"]), _median(r["own"]) * 1000
            rows += [
                {"benchmark": f"{name}: CPU while {jobs} wait", "value": f"{r['cpu']:.2f}",
                 "unit": "% of 1 core", "baseline": f"{r['idle_cpu']:.2f} (idle)",
                 "target": "< 5"},
                {"benchmark": f"{name}: RSS while {jobs} wait", "value": f"{r['rss']:.0f}",
                 "unit": "MiB", "baseline": f"{r['idle_rss']:.0f} (idle)"},
                {"benchmark": f"{name}: submit -> completed, median", "unit": "ms",
                 "value": f"{kinema:.0f}", "baseline": f"{provider:.0f} (provider)",
                 "ratio": f"{kinema / provider:.4f}"},
                {"benchmark": f"{name}: overhead per job, median", "value": f"{med:.1f}",
                 "unit": "ms", "target": "< 50"},
                {"benchmark": f"{name}: overhead per job, p95",
                 "value": f"{_pct(r['overhead'], 0.95):.1f}", "unit": "ms"},
                {"benchmark": f"{name}:   of which poll lag, median",
                 "value": f"{_median(r['lag']):.1f}",
                 "unit": "ms"},
                {"benchmark": f"{name}:   of which mirror + finish, median / p95",
                 "value": f"{_median(r['mirror']):.1f}"
                          f" / {_pct(r['mirror'], 0.95):.1f}", "unit": "ms"},
                {"benchmark": f"{name}: jobs failed", "value": str(r["failed"]), "unit": "jobs",
                 "target": "0"},
            ]  # fmt: skip
    return rows


def main() -> None:
    from bench.__main__ import table

    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--seconds", type=float, default=LATENCY, help="provider latency")
    parser.add_argument("--ramp", type=float, default=RAMP, help="submit the jobs over this")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    args = parser.parse_args()
    scenarios = tuple(args.scenario or SCENARIOS)
    print(table(run(args.jobs, args.seconds, args.ramp, scenarios)))


if __name__ == "__main__":
    main()
