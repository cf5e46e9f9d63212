"""Failover: a backend that fails before it accepted the job (refused connection, 429,
500/503) hands it to the next backend of the route, an upstream or a local engine; a job
a provider accepted is never sent elsewhere. Deterministic: fake providers (real HTTP on
127.0.0.1) with injected faults, and ports nothing listens on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinema.engines.testcard import TestcardEngine
from kinema.providers.runner import upstream_state
from kinema.testing import InProcess
from tests.fake_providers import KEY, FakeProvider
from tests.support import finish, free_port

SUBMIT = "/v2/video/generations"
PROMPT = {"model": "video-01", "prompt": "A lighthouse at dusk, waves crashing"}
CLIP_SECONDS = 2  # the fake providers' video (charged by its real length)
SECONDS = 6  # video-01's clips, as the local testcard renders them

pytestmark = pytest.mark.usefixtures("fake_env")  # every test here talks to fake upstreams


@pytest.fixture
def first(clip: bytes) -> Iterator[FakeProvider]:
    fake = FakeProvider("aimlapi", clip)
    yield fake
    fake.close()


@pytest.fixture
def second(clip: bytes) -> Iterator[FakeProvider]:
    fake = FakeProvider("openai", clip)
    yield fake
    fake.close()


def upstream(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "kind": fake.state.kind, "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
        "poll_seconds": 0.05, "request_timeout_seconds": 2.0, "submit_attempts": 2, **extra,
    }  # fmt: skip


def nowhere(kind: str = "openai") -> dict[str, Any]:
    """An upstream nothing listens on: every connection is refused."""
    return {"kind": kind, "base_url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
            "model": "m", "submit_attempts": 1}  # fmt: skip


PRICES = {"video-01@a": 1_000, "video-01@b": 2_000, "video-01@testcard": 3_000}


def service(
    tmp_path: Path, upstreams: dict[str, Any], route: list[str], local: bool = False
) -> InProcess:
    return InProcess(
        tmp_path, engines=[TestcardEngine()] if local else [], upstreams=upstreams,
        routes={"video-01": route}, prices=PRICES, lease_seconds=3,
    )  # fmt: skip


def run(svc: InProcess) -> dict[str, Any]:
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=PROMPT)
            assert answer.status_code == 201, answer.text
            result = finish(svc, client, answer.json()["id"])
            job = svc.store.get_job(answer.json()["id"])
            assert job is not None
            result["state"] = upstream_state(job)
            return result
    finally:
        svc.close()


# ---- before acceptance: the next backend takes the job ----------------------------------------
@pytest.mark.parametrize("fault", ["429", "500", "503"])
def test_an_upstream_refusing_before_accepting_hands_over_to_the_next(
    tmp_path: Path, first: FakeProvider, second: FakeProvider, fault: str
) -> None:
    first.inject("submit", fault, fault)  # both attempts refused
    ups = {"a": upstream(first), "b": upstream(second, model="m")}
    result = run(service(tmp_path, ups, ["a", "b"]))
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "b"
    assert result["meta"]["usage"]["credits_used"] == 2_000 * CLIP_SECONDS  # b's price
    assert first.submits == 0 and second.submits == 1
    assert result["state"]["backend"] == "b" and result["state"]["phase"] == "accepted"


def test_a_refused_connection_hands_over_to_a_local_engine(tmp_path: Path) -> None:
    """Sync path (`Worker.run_once`): the job goes back to the queue naming the local engine,
    and a worker slot that runs that engine renders it."""
    svc = service(tmp_path, {"a": nowhere()}, ["a", "testcard"], local=True)
    result = run(svc)
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "testcard"
    assert result["meta"]["usage"]["credits_used"] == 3_000 * SECONDS  # testcard's price
    assert result["state"] == {"backend": "testcard", "phase": "routed", "tried": ["a"]}


def test_the_asyncio_loop_hands_over_to_a_local_engine(tmp_path: Path) -> None:
    """Async path: the upstream loop records the next backend and releases the job; it is
    queued again (attempt not counted) and claimable by a local engine's worker slot."""
    svc = service(tmp_path, {"a": nowhere(), "b": nowhere()}, ["a", "b", "testcard"], local=True)
    try:
        with svc.client() as client:
            gen_id = client.post(SUBMIT, json=PROMPT).json()["id"]
            svc.worker.load()
            for _ in range(2):  # a, then b, each refused: handed over twice
                job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 3)
                assert job is not None and job.id == gen_id
                assert svc.worker.upstreams.take(job)
                deadline = time.monotonic() + 20
                while svc.worker.upstreams.count():
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            job = svc.store.get_job(gen_id)
            assert job is not None
            assert job.status == "queued" and job.backend == "testcard" and job.attempts == 0
            assert upstream_state(job) == {
                "backend": "testcard",
                "phase": "routed",
                "tried": ["a", "b"],
            }
            assert not svc.worker.upstreams.serves(job)  # a worker slot's job now
            result = finish(svc, client, gen_id)
            assert result["status"] == "completed", result
            assert result["meta"]["backend"] == "testcard"
    finally:
        svc.close()


def test_every_backend_refusing_ends_the_job_naming_them(tmp_path: Path) -> None:
    result = run(service(tmp_path, {"a": nowhere(), "b": nowhere()}, ["a", "b"]))
    assert result["status"] == "error", result
    assert result["error"]["name"] == "UpstreamUnavailable"
    assert "tried: a, b" in result["error"]["message"]
    assert result["meta"]["usage"]["credits_used"] == 0


def test_a_backend_without_the_capability_is_skipped(
    tmp_path: Path, first: FakeProvider, second: FakeProvider
) -> None:
    first.inject("submit", "503", "503")
    ups = {
        "a": upstream(first),
        "b": upstream(second, model="m", capabilities=["image-to-video"]),  # no text-to-video
        "c": upstream(second, model="m"),
    }
    result = run(service(tmp_path, ups, ["a", "b", "c"]))
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "c"


# ---- after acceptance (or when it may have been accepted): never sent elsewhere ---------------
@pytest.mark.parametrize("setup", ["failed", "lost", "download"])
def test_an_accepted_job_is_never_sent_elsewhere(
    tmp_path: Path, first: FakeProvider, second: FakeProvider, setup: str
) -> None:
    if setup == "failed":
        first.state.fail_with = {"name": "GenerationError", "message": "GPU on fire"}
    elif setup == "lost":
        first.inject("poll", "lost")
    else:  # the video cannot be fetched: UpstreamUnavailable, but after acceptance
        first.inject("download", *["503"] * 4)
    ups = {"a": upstream(first), "b": upstream(second, model="m")}
    result = run(service(tmp_path, ups, ["a", "b"]))
    assert result["status"] == "error", result
    assert result["meta"]["backend"] == "a"
    assert first.submits == 1 and second.submits == 0


@pytest.mark.parametrize("fault", ["502", "drop"])
def test_a_submit_that_may_have_been_taken_is_not_sent_elsewhere(
    tmp_path: Path, clip: bytes, second: FakeProvider, fault: str
) -> None:
    """A 502 (a gateway's: the provider behind it may have taken the job) or a dropped
    answer to a non-idempotent provider: the outcome is unknown, so no other backend gets
    the job either (it could be the second paid one)."""
    gpu = FakeProvider("openai", clip)
    try:
        gpu.inject("submit", fault)
        ups = {"gpu": upstream(gpu, model="m"), "b": upstream(second, model="m")}
        result = run(service(tmp_path, ups, ["gpu", "b"]))
        assert result["status"] == "error", result
        assert result["error"]["name"] == "UpstreamOutcomeUnknown"
        assert second.submits == 0
    finally:
        gpu.close()


def test_the_route_recorded_survives_a_new_worker(
    tmp_path: Path, first: FakeProvider, second: FakeProvider
) -> None:
    """A job handed over and then left by a dead worker resumes with its next backend (the
    row names it), never its first one again."""
    first.inject("submit", "503", "503")
    ups = {"a": upstream(first), "b": upstream(second, model="m")}
    svc = service(tmp_path, ups, ["a", "b"])
    try:
        with svc.client() as client:
            gen_id = client.post(SUBMIT, json=PROMPT).json()["id"]
            svc.worker.load()
            job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 3)
            assert job is not None and svc.worker.upstreams.take(job)
            deadline = time.monotonic() + 20
            while svc.worker.upstreams.count():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            from kinema.worker import Worker

            svc.worker = Worker(svc.settings, svc.store, svc.storage, svc.engines)
            result = finish(svc, client, gen_id)
            assert result["status"] == "completed" and result["meta"]["backend"] == "b"
            assert first.submits == 0 and second.submits == 1
            row = svc.store.get_job(gen_id)
            assert row is not None and KEY not in json.dumps(upstream_state(row))
    finally:
        svc.close()


def test_a_provider_without_idempotency_hands_over_after_a_500(
    tmp_path: Path, clip: bytes, first: FakeProvider
) -> None:
    """A 500 or 503 is the provider's own answer that it did not take the job: even a
    provider with no idempotency key may be retried, then failed over (not "unknown")."""
    gpu = FakeProvider("openai", clip)
    try:
        gpu.inject("submit", "500", "503")
        ups = {"gpu": upstream(gpu, model="m"), "a": upstream(first)}
        result = run(service(tmp_path, ups, ["gpu", "a"]))
        assert result["status"] == "completed", result
        assert result["meta"]["backend"] == "a"
        assert gpu.submits == 0 and first.submits == 1
    finally:
        gpu.close()
