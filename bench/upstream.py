"""`python -m bench.upstream`: 200 concurrent upstream jobs in ONE worker process against a
fake fal queue (tests/fake_providers.py, in its own process so its CPU is not counted)
whose jobs complete N seconds after submit.

Measured in the worker process (its asyncio loop, housekeeping heartbeats, job store):
- CPU while waiting: process CPU seconds / wall seconds between "all 200 accepted" and the
  first upstream completion (target < 5 % of one core), and its RSS;
- overhead per job: Kinema's `finished_at` minus the moment the fake first answered
  "COMPLETED" for that job (result fetch, download, PyAV check, storage, finish; target
  < 50 ms), and separately the poll lag (how long after the provider finished Kinema asked,
  bounded by the poll interval, which the operator sets with `poll_seconds`).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

JOBS = 200
COMPLETE_AFTER = 10.0
POLL_SECONDS = 2.0  # the fal kind's default
BASELINE = {"overhead": "", "cpu": "", "rss": ""}  # filled in README after the first run


def _fake(conn: Connection, video: bytes, complete_after: float) -> None:
    from tests.fake_providers import FakeProvider

    fake = FakeProvider("fal", video, complete_after)
    conn.send(fake.base_url)
    conn.recv()  # "report"
    conn.send(dict(fake.state.completed_seen))
    fake.close()


def _clip(work: Path) -> bytes:
    from kinema.engines.testcard import TestcardEngine
    from kinema.specs.base import TEXT_TO_VIDEO, RenderRequest
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(
    jobs: int = JOBS, complete_after: float = COMPLETE_AFTER, poll: float = POLL_SECONDS
) -> list[dict[str, Any]]:
    from kinema.providers.runner import upstream_state
    from kinema.testing import InProcess

    os.environ.setdefault("FAL_BENCH_KEY", "fal-bench-key")
    from tests.fake_providers import KEY

    os.environ["FAL_BENCH_KEY"] = KEY
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = _clip(root / "clip")
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(
            target=_fake, args=(child, video, complete_after), daemon=True
        )
        proc.start()
        base_url = parent.recv()
        ups = {"fal": {"kind": "fal", "base_url": base_url, "api_key_env": "FAL_BENCH_KEY",
                       "poll_seconds": poll, "concurrency": jobs}}  # fmt: skip
        svc = InProcess(root / "svc", engines=[], upstreams=ups,
                        routes={"video-01": ["fal"]}, lease_seconds=30)  # fmt: skip
        try:
            body = {"model": "video-01", "prompt": "A lighthouse at dusk"}
            with svc.client() as client:
                ids = [client.post("/v2/video/generations", json=body).json()["id"]
                       for _ in range(jobs)]  # fmt: skip
            svc.worker.load()
            ups_ = svc.worker.upstreams
            first = time.time()
            for _ in ids:
                job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 30)
                assert job is not None and ups_.take(job)
            while True:  # every submit recorded as accepted
                states = [upstream_state(svc.store.get_job(i)) for i in ids]  # type: ignore[arg-type]
                if all(s and s.get("phase") == "accepted" for s in states):
                    break
                time.sleep(0.05)
            accepted = time.time()
            # The waiting window: until the first upstream job completes.
            window_end = first + complete_after - 0.1
            cpu0, wall0 = _cpu(), time.monotonic()
            time.sleep(max(0.5, window_end - time.time()))
            cpu_pct = 100 * (_cpu() - cpu0) / (time.monotonic() - wall0)
            rss = _rss_mib()
            deadline = time.monotonic() + complete_after + 120
            while ups_.count() and time.monotonic() < deadline:
                time.sleep(0.05)
            parent.send("report")
            seen: dict[str, float] = parent.recv()
            overhead, lag, failed = [], [], 0
            for gen_id in ids:
                job = svc.store.get_job(gen_id)
                assert job is not None
                state = upstream_state(job) or {}
                if job.finished_at is None or str(job.status) != "completed":
                    failed += 1
                    continue
                done_at = seen[state["id"]]
                overhead.append((job.finished_at - done_at) * 1000)
                created = job.started_at or job.created_at
                lag.append(max(0.0, done_at - (created + complete_after)) * 1000)
        finally:
            svc.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    overhead.sort()
    p95 = overhead[int(0.95 * (len(overhead) - 1))] if overhead else float("nan")
    return [
        {"benchmark": f"upstream: {jobs} jobs accepted (s)", "value": f"{accepted - first:.2f}",
         "unit": "s"},
        {"benchmark": f"upstream: CPU while {jobs} wait", "value": f"{cpu_pct:.2f}",
         "unit": "% of 1 core", "baseline": BASELINE["cpu"], "target": "< 5"},
        {"benchmark": f"upstream: RSS while {jobs} wait", "value": f"{rss:.0f}", "unit": "MiB",
         "baseline": BASELINE["rss"]},
        {"benchmark": "upstream: overhead per job, median",
         "value": f"{statistics.median(overhead):.1f}" if overhead else "nan", "unit": "ms",
         "baseline": BASELINE["overhead"], "target": "< 50"},
        {"benchmark": "upstream: overhead per job, p95", "value": f"{p95:.1f}", "unit": "ms"},
        {"benchmark": f"upstream: poll lag, median (poll {poll:g} s)",
         "value": f"{statistics.median(lag):.0f}" if lag else "nan", "unit": "ms"},
        {"benchmark": "upstream: jobs failed", "value": str(failed), "unit": "jobs",
         "target": "0"},
    ]  # fmt: skip


def main() -> None:
    from bench.__main__ import table

    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--seconds", type=float, default=COMPLETE_AFTER, help="provider latency")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS)
    args = parser.parse_args()
    print(table(run(args.jobs, args.seconds, args.poll)))


if __name__ == "__main__":
    main()
