"""The worker's upstream loop: batched housekeeping (one statement renews every lease, one
finds every cancellation), cancellations reaching the provider without waiting out the
poll interval, and the waiting schedule (the provider's `Retry-After`, its interval,
stretched on long waits)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from kinema.engines.testcard import TestcardEngine
from kinema.providers.base import Done, Hooks, Pending, Provider, UpstreamOptions
from kinema.providers.runner import upstream_state
from kinema.providers.sequence import MAX_STRETCH, next_pause, wait
from kinema.render_request import TEXT_TO_VIDEO, RenderRequest
from kinema.testing import FakeContext, InProcess
from tests.fake_providers import KEY, FakeProvider

PROMPT = {"model": "video-01", "prompt": "A lighthouse at dusk"}
SUBMIT = "/v2/video/generations"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    ctx = FakeContext(tmp_path_factory.mktemp("clip"))
    request = RenderRequest(model="video-01", capability=TEXT_TO_VIDEO, prompt="x", duration=1)
    TestcardEngine().generate(request, ctx)
    return ctx.output_path.read_bytes()


@pytest.fixture
def fal(clip: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("FAKE_UP_KEY", KEY)
    fake = FakeProvider("fal", clip, complete_after=600)
    yield fake
    fake.close()


def service(tmp_path: Path, fake: FakeProvider, poll: float) -> InProcess:
    upstream = {"kind": "fal", "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
                "poll_seconds": poll, "request_timeout_seconds": 2.0}  # fmt: skip
    return InProcess(
        tmp_path, engines=[], upstreams={"up": upstream}, routes={"video-01": ["up"]},
        lease_seconds=30,
    )  # fmt: skip


def until(check: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)


def test_cancel_of_a_waiting_upstream_job_reaches_the_provider(
    tmp_path: Path, fal: FakeProvider
) -> None:
    """The job polls every 10 minutes; the owner's cancel is found by the batched check,
    wakes its pause, calls fal's cancel for that request, and ends the job Cancelled
    (the test's 20 s bound is far below the poll interval: no poll had to come first)."""
    svc = service(tmp_path, fal, poll=600)
    try:
        with svc.client() as client:
            ids = [client.post(SUBMIT, json=PROMPT).json()["id"] for _ in range(3)]
            svc.worker.load()
            for _ in ids:
                job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 30)
                assert job is not None and svc.worker.upstreams.take(job)

            def accepted() -> bool:
                states = [upstream_state(svc.store.get_job(i)) or {} for i in ids]  # type: ignore[arg-type]
                return all(s.get("phase") == "accepted" for s in states)

            until(accepted)
            target = ids[1]
            answer = client.post(f"{SUBMIT}/cancel", params={"generation_id": target})
            assert answer.status_code == 200, answer.text
            until(lambda: svc.worker.upstreams.count() == 2)
            body = client.get(SUBMIT, params={"generation_id": target}).json()
            assert body["status"] == "error" and body["error"]["name"] == "Cancelled", body
            upstream_id = (upstream_state(svc.store.get_job(target)) or {})["id"]  # type: ignore[arg-type]
            assert fal.state.cancelled == [upstream_id]
            for other in (ids[0], ids[2]):  # the others wait on, untouched
                assert client.get(SUBMIT, params={"generation_id": other}).json()["status"] in (
                    "queued", "generating",
                )  # fmt: skip
    finally:
        svc.worker.stop.set()
        svc.worker.hard_stop.set()
        svc.worker.upstreams.stop(svc.worker.hard_stop)
        svc.close()


def test_batched_lease_renewal_and_cancel_checks(tmp_path: Path, fal: FakeProvider) -> None:
    svc = service(tmp_path, fal, poll=600)
    try:
        with svc.client() as client:
            ids = [client.post(SUBMIT, json=PROMPT).json()["id"] for _ in range(4)]
            svc.worker.load()
            claimed = [svc.store.claim("w1", list(svc.worker.routes), 5) for _ in ids[:3]]
            assert all(job is not None for job in claimed)
            mine = [job.id for job in claimed if job is not None]
            before = {i: svc.store.get_job(i).lease_expires_at for i in mine}  # type: ignore[union-attr]
            held = svc.store.renew_leases([*mine, ids[3], "missing"], "w1", 300)
            assert held == set(mine)  # not the queued one, not an unknown id
            for job_id in mine:
                assert svc.store.get_job(job_id).lease_expires_at > before[job_id] + 200  # type: ignore[union-attr, operator]
            assert svc.store.renew_leases(mine, "another-worker", 300) == set()
            assert svc.store.cancels_requested(mine) == set()
            client.post(f"{SUBMIT}/cancel", params={"generation_id": mine[0]})
            client.delete(SUBMIT, params={"generation_id": mine[1]})
            assert svc.store.cancels_requested([*mine, "gone"]) == {mine[0], mine[1], "gone"}
            assert svc.store.cancels_requested([]) == set()
    finally:
        svc.close()


def test_next_pause_follows_advice_interval_and_stretches_long_waits() -> None:
    assert next_pause(2.0, 0.0, 0.25) == 0.25  # the provider's Retry-After wins
    assert next_pause(2.0, 0.0, 0.0) > 0  # "now" still yields
    assert next_pause(2.0, 0.0, 10_000) <= 300  # a far-off hint is re-asked
    for waited, expected in ((0.0, 2.0), (20.0, 2.0), (100.0, 5.0), (3600.0, 2.0 * MAX_STRETCH)):
        pause = next_pause(2.0, waited, None)
        assert expected * 0.9 <= pause <= expected * 1.1, (waited, pause)


def test_poll_budget_hands_out_evenly_spaced_slots() -> None:
    from kinema.providers.base import PollBudget

    budget = PollBudget(20.0)  # one poll each 50 ms, all jobs together

    async def go() -> list[float]:
        slots = []
        for _ in range(4):
            await budget.take()
            slots.append(budget.next_slot)
        return slots

    slots = asyncio.run(go())
    assert [round(b - a, 6) for a, b in itertools.pairwise(slots)] == [0.05] * 3
    unlimited = PollBudget(None)
    asyncio.run(unlimited.take())
    assert unlimited.next_slot == 0.0


# ---- a provider that says when to ask again --------------------------------------------
class _Advising(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    polls: ClassVar[list[float]] = []
    ready_after = 3  # answers "running" this many times

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.polls.append(time.monotonic())
        done = len(self.polls) > self.ready_after
        data = b'{"done": true}' if done else b'{"done": false}'
        self.send_response(200 if done else 202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if not done:
            self.send_header("Retry-After", "0.05")
        self.end_headers()
        self.wfile.write(data)


class _PollOnly(Provider):
    kind: ClassVar[str] = "poll-only"
    capabilities: ClassVar[frozenset[str]] = frozenset({TEXT_TO_VIDEO})
    poll_seconds: ClassVar[float] = 600.0  # never reached when the advice is honoured

    async def submit(self, *args: Any) -> dict[str, Any]:
        raise NotImplementedError  # this test only waits

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(http, "GET", f"{self.base_url}/status/{state['id']}")
        return Done(url="unused") if response.json()["done"] else Pending()


@pytest.fixture
def advising() -> Iterator[str]:
    _Advising.polls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Advising)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_retry_after_on_a_running_answer_sets_the_next_poll(tmp_path: Path, advising: str) -> None:
    provider = _PollOnly("adv", UpstreamOptions(kind="poll-only", base_url=advising))

    async def record(_state: dict[str, Any]) -> None:
        return None

    async def fetch(_ref: Any) -> bytes:
        return b""

    hooks = Hooks(job_id="j", output_path=tmp_path / "out.mp4", record=record, fetch=fetch)

    async def go() -> Done:
        async with httpx.AsyncClient() as http:
            return await asyncio.wait_for(wait(provider, http, {"id": "x"}, hooks), 30)

    assert isinstance(asyncio.run(go()), Done)
    assert len(_Advising.polls) == _Advising.ready_after + 1  # polled at once, then as told


def test_a_pause_ends_when_the_job_must_stop(tmp_path: Path, advising: str) -> None:
    """A cancellation set while the job sleeps between polls ends the sleep: the job
    stops (Cancelled) without waiting out the provider's 600 s interval."""
    from kinema.errors import Cancelled

    provider = _PollOnly("adv", UpstreamOptions(kind="poll-only", base_url=advising))
    _Advising.ready_after = 10**6
    stop = threading.Event()

    async def record(_state: dict[str, Any]) -> None:
        return None

    async def fetch(_ref: Any) -> bytes:
        return b""

    async def go() -> None:
        wakeup = asyncio.Event()
        hooks = Hooks(
            job_id="j", output_path=tmp_path / "out.mp4", record=record, fetch=fetch,
            cancelled=stop.is_set, wakeup=wakeup,
        )  # fmt: skip
        async with httpx.AsyncClient() as http:
            waiting = asyncio.create_task(wait(provider, http, {"id": "x"}, hooks, first=600))
            await asyncio.sleep(0.05)
            stop.set()
            wakeup.set()
            await asyncio.wait_for(waiting, 30)

    try:
        with pytest.raises(Cancelled):
            asyncio.run(go())
        assert _Advising.polls == []  # stopped before its first poll was due
    finally:
        _Advising.ready_after = 3
