"""A worker SIGKILLed while its submit is in flight to a provider: the provider takes the
job, but Kinema never learns its id. The job row says the submit was being sent
(`phase: submitting`), so the worker that recovers the job knows the outcome is unknown:
a provider with no idempotency key ends the job `UpstreamOutcomeUnknown` (never a second
paid job); one that honours `Idempotency-Key` is asked again with the same key and
answers with the job it already has. Either way the provider sees exactly one job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.fake_providers import KEY, FakeProvider
from tests.support import KinemaServer, children, wait_for

PROMPT = {"model": "video-01", "prompt": "A lighthouse at dusk, waves crashing"}


def kill_worker_mid_submit(
    tmp_path: Path, fake: FakeProvider, upstream: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Submit through a real `kinema serve`, SIGKILL its worker while the provider holds
    the submit unanswered; the job's final poll and how many jobs the provider has."""
    fake.state.slow_seconds = 3.0
    fake.inject("submit", "slow")  # the provider takes the job only after 3 s
    up = {"kind": fake.state.kind, "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
          "poll_seconds": 0.1, "request_timeout_seconds": 30, **upstream}  # fmt: skip
    server = KinemaServer(
        tmp_path, workers=1, KINEMA_ENGINES="motion", FAKE_UP_KEY=KEY,
        KINEMA_UPSTREAMS=json.dumps({"up": up}), KINEMA_ROUTES=json.dumps({"video-01": ["up"]}),
    )  # fmt: skip
    server.start()
    try:
        with server.client() as client:
            gen_id = client.post("/v2/video/generations", json=PROMPT).json()["id"]
            deadline = time.monotonic() + 30
            while not (
                any(method == "POST" for method, _ in fake.state.requests)
                and '"submitting"' in phase(tmp_path / "kinema.db", gen_id)
            ):
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.02)
            assert server.proc is not None
            for pid in children(server.proc.pid):  # the worker dies with the submit in flight
                os.kill(pid, signal.SIGKILL)
            result = wait_for(client, gen_id, timeout=60)
        deadline = time.monotonic() + 10
        while fake.submits == 0:  # the provider finishes taking the first submit
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return result, fake.submits
    finally:
        server.stop()


def phase(db: Path, gen_id: str) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("select upstream from jobs where id = ?", (gen_id,)).fetchone()
    return str(row[0]) if row and row[0] else ""


def test_no_idempotency_key_means_outcome_unknown_never_a_second_job(
    tmp_path: Path, clip: bytes
) -> None:
    fake = FakeProvider("fal", clip)
    try:
        result, jobs = kill_worker_mid_submit(tmp_path, fake, {})
        assert result["status"] == "error", result
        assert result["error"]["name"] == "UpstreamOutcomeUnknown", result
        assert jobs == 1
        assert [m for m, _ in fake.state.requests].count("POST") == 1  # never re-sent
    finally:
        fake.close()


def test_an_idempotent_provider_is_asked_again_and_finds_its_job(
    tmp_path: Path, clip: bytes
) -> None:
    fake = FakeProvider("aimlapi", clip)
    try:
        result, jobs = kill_worker_mid_submit(tmp_path, fake, {"idempotent": True})
        assert result["status"] == "completed", result
        assert result["meta"]["backend"] == "up"
        assert jobs == 1  # the re-sent submit carried the same Idempotency-Key
        assert [m for m, _ in fake.state.requests].count("POST") == 2
    finally:
        fake.close()
