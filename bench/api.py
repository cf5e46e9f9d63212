"""Benchmark: the HTTP hot paths of `kinema serve` against a bare Starlette app.

Both servers run as separate processes on this machine with the same uvicorn config
(bench/bare_app.py), and the same load generator drives them one after the other, so
the ratios hold on any machine:

- poll GET: a completed generation (the path that signs a fresh download URL each time),
  against a route that returns the same JSON bytes;
- create POST: a valid pixverse submit to a server with no workers (the queue only
  grows), against a route that parses the same JSON body;
- peak RSS of the server and its worker while a 5 s 720p motion job renders, against
  the bare server's RSS.

The load generator is `wrk` when it is on PATH (and BENCH_LOADGEN is not "python");
otherwise a small Python closed-loop client, whose own cost caps the numbers (the rows
say so).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, suppress
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from tests.support import KinemaServer, MediaServer, free_port, make_image, wait_for

POLL_SECONDS, POST_SECONDS, WARMUP_SECONDS = 10, 5, 1
CONNECTIONS = 16
PYTHON_CLIENTS = 4  # processes of the fallback generator, one keep-alive connection each
RSS_SAMPLE_SECONDS = 0.05
PATH = "/v2/video/generations"
MODEL = "pixverse/v5/image-to-video"
WRK = None if os.environ.get("BENCH_LOADGEN") == "python" else shutil.which("wrk")

# wrk's summary as one JSON line (latencies in µs), instead of parsing its human output.
WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = [==[{body}]==]
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{{"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "errors": %d, '
    .. '"detail": "connect %d, read %d, write %d, status %d, timeout %d"}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# -- load generators --------------------------------------------------------------------
def _wrk(url: str, seconds: float, method: str, body: str, key: str, tmp: Path) -> dict[str, Any]:
    script = tmp / f"{method.lower()}.lua"
    script.write_text(WRK_SCRIPT.format(method=method, body=body, key=key))
    out = subprocess.run(
        # A long --timeout: a slow answer is a latency to report, not an error.
        [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s", "-s",
         str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def _client(url: str, seconds: float, method: str, body: str, key: str) -> dict[str, Any]:
    """One keep-alive connection in a closed loop (runs in a child process)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = body.encode() if method == "POST" else None
    latencies, errors = [], 0
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        conn.request(method, target, payload, headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        errors += response.status >= 400
    return {"latencies": latencies, "errors": errors}


def _python_load(url: str, seconds: float, method: str, body: str, key: str) -> dict[str, Any]:
    with ProcessPoolExecutor(PYTHON_CLIENTS) as pool:
        futures = [
            pool.submit(_client, url, seconds, method, body, key) for _ in range(PYTHON_CLIENTS)
        ]
        results = [f.result() for f in futures]
    latencies = sorted(x for r in results for x in r["latencies"])
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_us": cuts[49] * 1e6,
        "p99_us": cuts[98] * 1e6,
        "errors": sum(r["errors"] for r in results),
    }


def _load(url: str, seconds: float, method: str, body: str, key: str, tmp: Path) -> dict[str, Any]:
    """Warm up (thread pool, connection caches), then measure; refuse failed requests,
    since fast 4xx answers would inflate the rate."""
    for duration in (WARMUP_SECONDS, seconds):
        if WRK:
            result = _wrk(url, duration, method, body, key, tmp)
        else:
            result = _python_load(url, duration, method, body, key)
    if result["errors"]:
        detail = result.get("detail", "HTTP status >= 400")
        raise RuntimeError(f"{method} {url}: {result['errors']} failed requests ({detail})")
    result["rps"] = result["requests"] / result["seconds"]
    return result


# -- processes --------------------------------------------------------------------------
def _start_kinema(stack: ExitStack, data_dir: Path, workers: int, **env: str) -> KinemaServer:
    server = KinemaServer(data_dir, workers=workers, **env)

    def stop() -> None:
        if server.proc is not None:
            server.stop(timeout=15)  # SIGTERM; the process group is killed after that

    stack.callback(stop)
    return server.start()


def _start_bare(stack: ExitStack, poll_body: dict[str, Any]) -> tuple[str, psutil.Process]:
    port = free_port()
    env = {**os.environ, "BENCH_POLL_BODY": json.dumps(poll_body)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_app", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(base + "/poll", timeout=1).status_code == 200:
                return base, psutil.Process(proc.pid)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("bench.bare_app did not come up")


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def _peak_rss_during_job(server: KinemaServer, body: dict[str, Any]) -> int:
    """Peak summed RSS of `kinema serve` and its worker(s) while one job runs."""
    root = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    peak, done = _tree_rss(root), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(RSS_SAMPLE_SECONDS):
            peak = max(peak, _tree_rss(root))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with server.client() as client:
            job = client.post(PATH, json=body).raise_for_status().json()
            result = wait_for(client, job["id"], timeout=120)
    finally:
        done.set()
        sampler.join()
    if result["status"] != "completed":
        raise RuntimeError(f"720p job failed: {result['error']}")
    return peak


# -- the benchmark ----------------------------------------------------------------------
def _num(x: float) -> float:
    return round(x) if x >= 100 else round(x, 2)


def _row(name: str, value: float, unit: str, baseline: float, target: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "value": _num(value),
        "unit": unit,
        "baseline": _num(baseline),
        "ratio": round(value / baseline, 2),
        "target": target,
    }


def run() -> list[dict[str, Any]]:
    label = "" if WRK else " (python client)"
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kinema-bench-")))
        media = MediaServer(tmp / "media")
        stack.callback(media.close)
        image_url = media.add("bench.png", make_image(640, 360))
        small = {"model": MODEL, "prompt": "slow zoom in", "image_url": image_url,
                 "resolution": "360p", "duration": 5}  # fmt: skip

        server = _start_kinema(stack, tmp / "serve", workers=1)
        with server.client() as client:
            job = client.post(PATH, json=small).raise_for_status().json()
            poll_body = wait_for(client, job["id"], timeout=120)
        if poll_body["status"] != "completed":
            raise RuntimeError(f"360p job failed: {poll_body['error']}")
        bare_url, bare_proc = _start_bare(stack, poll_body)

        key = server.key
        poll_url = f"{server.base_url}{PATH}?generation_id={job['id']}"
        poll = _load(poll_url, POLL_SECONDS, "GET", "", key, tmp)
        bare_poll = _load(bare_url + "/poll", POLL_SECONDS, "GET", "", key, tmp)

        # No workers, and no pending cap: the queue grows by thousands during the run.
        queue = _start_kinema(
            stack, tmp / "queue", workers=0, KINEMA_MAX_PENDING_PER_KEY="1000000000"
        )
        # A job that stays queued: every poll reads the database (status + queue position),
        # where a finished job is served from the API's cache of final states.
        with queue.client() as client:
            waiting = client.post(PATH, json=small).raise_for_status().json()["id"]
        queued_url = f"{queue.base_url}{PATH}?generation_id={waiting}"
        queued_poll = _load(queued_url, POLL_SECONDS, "GET", "", key, tmp)
        body = json.dumps(small)
        create = _load(queue.base_url + PATH, POST_SECONDS, "POST", body, key, tmp)
        bare_create = _load(bare_url + "/submit", POST_SECONDS, "POST", body, key, tmp)
        bare_rss = bare_proc.memory_info().rss

        peak = _peak_rss_during_job(server, {**small, "resolution": "720p"})

    ms, mb = 1e-3, 1024 * 1024
    return [
        _row(
            f"poll GET rps, completed job{label}", poll["rps"], "req/s", bare_poll["rps"], "≥ 0.5×"
        ),
        _row(
            f"poll GET p50 ms, completed{label}",
            poll["p50_us"] * ms,
            "ms",
            bare_poll["p50_us"] * ms,
            "—",
        ),
        _row(
            f"poll GET p99 ms, completed{label}",
            poll["p99_us"] * ms,
            "ms",
            bare_poll["p99_us"] * ms,
            "—",
        ),
        _row(
            f"poll GET rps, queued job{label}",
            queued_poll["rps"],
            "req/s",
            bare_poll["rps"],
            "≥ 0.5×",
        ),
        _row(
            f"poll GET p99 ms, queued{label}",
            queued_poll["p99_us"] * ms,
            "ms",
            bare_poll["p99_us"] * ms,
            "—",
        ),
        _row(f"create POST rps{label}", create["rps"], "req/s", bare_create["rps"], "—"),
        _row("RSS server+worker MB", peak / mb, "MB", bare_rss / mb, "≤ 400 MB"),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
