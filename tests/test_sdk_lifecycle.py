"""The SDK's lifecycle calls: cancel, list (every page), delete, quote, idempotent submits
and live events. In-process (`kinema.testing`, the worker stepped by hand) where the check
is about answers; through a recording proxy in front of a real `kinema serve` where it is
about the wire: a submit whose answer is lost, event streams cut or stalled midway, a
server without an events route, a stream that keeps failing."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kinema.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    DeadlineExceeded,
    GenerationEvent,
    LocalValidationError,
    NotFoundError,
    Quote,
)
from kinema.testing import InProcess, InstantEngine, in_process
from kinema.testing.harness import BASE_URL, TEST_KEY
from tests.flaky_server import FlakyServer
from tests.support import KinemaServer, MediaServer

GENERATIONS = "/v2/video/generations"
EVENTS = GENERATIONS + "/events"
PROMPT: dict[str, Any] = {"prompt": "A heron lifts off a misty lake."}
HOP = {
    "host", "connection", "keep-alive", "content-length", "transfer-encoding",
    "content-encoding", "accept-encoding",
}  # fmt: skip


# ----------------------------------------------------------------------------- the proxy
@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0  # the server's answer (0: not forwarded)
    answer_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Lose:
    """Forward the request, then drop the connection instead of relaying the answer."""


@dataclass
class Answer:
    """Answer this instead of the server (the request is not forwarded)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Action = Lose | Answer
MISSING_EVENTS = Answer(404, {"message": f"Cannot GET {EVENTS}", "statusCode": 404})


class QuietServer(ThreadingHTTPServer):
    """The proxy's server: a client that hangs up mid-stream is expected here, and its
    traceback must not land on the stderr the CLI tests read."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Proxy:
    """A recording HTTP/1.1 proxy in front of a real server. Scripted actions per method
    and path (`queue`: the next requests; `always`: every one). Event streams are relayed
    line by line as they arrive; with `cut_after`, each connection is cut after that many
    events, partway into the next one (`stall`: held open, silent, instead)."""

    def __init__(
        self, upstream: str, *, cut_after: int | None = None, stall: float | None = None
    ) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.stall = stall
        self.requests: list[Seen] = []
        self._script: dict[tuple[str, str], deque[Action]] = defaultdict(deque)
        self._always: dict[tuple[str, str], Action] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=httpx.Timeout(30, read=None))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                try:
                    outer._serve(self)
                except OSError:  # the client hung up
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def queue(self, method: str, path: str, *actions: Action) -> None:
        with self._lock:
            self._script[(method, path)].extend(actions)

    def always(self, method: str, path: str, action: Action | None) -> None:
        with self._lock:
            if action is None:
                self._always.pop((method, path), None)
            else:
                self._always[(method, path)] = action

    def seen(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._http.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        seen = Seen(handler.command, parts.path, parse_qs(parts.query), headers)
        key = (seen.method, seen.path)
        with self._lock:
            self.requests.append(seen)
            action = self._script[key].popleft() if self._script[key] else self._always.get(key)
        if isinstance(action, Answer):
            answer = httpx.Response(action.status, json=action.body, headers=action.headers)
            _write(handler, action.status, dict(answer.headers), answer)
            return
        forward = {k: v for k, v in headers.items() if k not in HOP}
        request = self._http.build_request(
            seen.method, self.upstream + handler.path, headers=forward, content=body
        )
        response = self._http.send(request, stream=True)
        try:
            seen.status = response.status_code
            seen.answer_headers = {k.lower(): v for k, v in response.headers.items()}
            if isinstance(action, Lose):
                response.read()  # the server did its part; the client never hears of it
                handler.close_connection = True
            elif response.headers.get("content-type", "").startswith("text/event-stream"):
                self._relay_stream(handler, response)
            else:
                response.read()
                _write(handler, response.status_code, dict(response.headers), response)
        finally:
            response.close()

    def _relay_stream(self, handler: BaseHTTPRequestHandler, response: httpx.Response) -> None:
        handler.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in HOP:
                handler.send_header(name, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes) -> None:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        events, in_event = 0, False
        for line in response.iter_lines():
            chunk(line.encode() + b"\n")
            cutting = self.cut_after is not None and events >= self.cut_after
            if line and not line.startswith(":"):
                if cutting:  # partway into the next event: cut (or go silent) here
                    if self.stall is not None:
                        time.sleep(self.stall)
                    handler.close_connection = True
                    return
                in_event = True
            elif not line and in_event:
                events, in_event = events + 1, False
        handler.wfile.write(b"0\r\n\r\n")


def _write(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: httpx.Response
) -> None:
    payload = body.content
    handler.send_response(status)
    for name, value in headers.items():
        if name.lower() not in HOP:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def fresh_key(server: KinemaServer, name: str) -> str:
    """A new API key on `server` (its listings start empty)."""
    from kinema.settings import Settings
    from kinema.store import open_store

    store = open_store(Settings(data_dir=server.data_dir).resolved_database_url, wakeup=False)
    try:
        return store.create_key(name, None)[1]
    finally:
        store.close()


def image_job(media: MediaServer) -> dict[str, Any]:
    """A real motion job of a few seconds with about eight events (five progress steps)."""
    return {
        "image_url": f"{media.base}/landscape.png", "prompt": "slow zoom", "resolution": "540p",
        "duration": 5,
    }  # fmt: skip


# ----------------------------------------------------------------------------- in process
@pytest.fixture
def instant(tmp_path: Path) -> Iterator[InProcess]:
    with in_process(tmp_path, [InstantEngine()]) as kinema:
        yield kinema


@pytest.fixture
def client(instant: InProcess) -> Iterator[Client]:
    with instant.client() as http, Client(BASE_URL, TEST_KEY, http_client=http) as sdk:
        yield sdk


def test_list_walks_every_page_then_cancel_and_delete(instant: InProcess, client: Client) -> None:
    ids = [client.videos.create("video-01", **PROMPT).id for _ in range(5)]
    assert len(set(ids)) == 5  # each call its own Idempotency-Key: five jobs
    instant.work(limit=2)
    page = client.videos.list(limit=2)
    assert [g.id for g in page.data] == [ids[4], ids[3]] and page.has_more
    assert [g.id for g in page] == ids[::-1]  # iterating fetches the following pages
    assert [len(p.data) for p in page.iter_pages()] == [2, 2, 1]
    done = list(client.videos.list(status="completed"))
    assert {g.id for g in done} == set(ids[:2]) and all(g.video for g in done)
    assert len(list(client.videos.list(model="video-01", limit=100))) == 5
    assert list(client.videos.list(model="veed/fabric-1.0")) == []
    with pytest.raises(ValueError, match="1-100"):
        client.videos.list(limit=101)

    cancelled = client.videos.cancel(ids[4])  # queued: it never starts
    assert cancelled.failed and cancelled.error and cancelled.error.name == "Cancelled"
    assert cancelled.credits_used == 0
    assert {job.id for job in instant.work()} == {ids[2], ids[3]}  # not the cancelled one
    with pytest.raises(ConflictError) as finished:
        client.videos.cancel(ids[0])
    assert finished.value.status_code == 409 and "already finished" in finished.value.message
    with pytest.raises(NotFoundError):
        client.videos.cancel("no-such-generation")

    client.videos.delete(ids[0])
    with pytest.raises(NotFoundError):
        client.videos.get(ids[0])
    with pytest.raises(NotFoundError):
        client.videos.delete(ids[0])
    assert ids[0] not in [g.id for g in client.videos.list()]


def test_quote_and_idempotency_keys(instant: InProcess, client: Client) -> None:
    quote = client.videos.quote("video-01", **PROMPT)
    assert isinstance(quote, Quote) and quote.model == "video-01" and quote.backend == "instant"
    assert quote.credits_used and quote.credits_used > 0 and quote.raw["status"] == "quote"
    with pytest.raises(BadRequestError) as refused:  # the server's own validation
        client.videos.quote("kling-video/v1.6/standard/image-to-video", prompt="x")
    assert refused.value.details[0]["field"] == "model"
    with pytest.raises(LocalValidationError):
        client.videos.quote("video-01", prompt="x", unknown_field=1)
    assert list(client.videos.list()) == []  # quotes create nothing

    first = client.videos.create("video-01", idempotency_key="order-42", **PROMPT)
    again = client.videos.create("video-01", idempotency_key="order-42", **PROMPT)
    assert again.id == first.id
    with pytest.raises(ConflictError, match="order-42"):
        client.videos.create("video-01", idempotency_key="order-42", prompt="Another")
    urgent = client.videos.create(
        "video-01", priority="high", start_timeout=600, run_timeout=60, **PROMPT
    )
    instant.work()
    assert client.videos.get(urgent.id).credits_used == quote.credits_used  # as quoted
    for bad in ({"priority": "urgent"}, {"run_timeout": 0}, {"idempotency_key": ""}):
        with pytest.raises(LocalValidationError):
            client.videos.create("video-01", **bad, **PROMPT)
    assert len(list(client.videos.list())) == 2


def test_async_twins(instant: InProcess) -> None:
    async def main() -> None:
        async with (
            instant.async_client() as http,
            AsyncClient(BASE_URL, TEST_KEY, http_client=http) as client,
        ):
            ids = [(await client.videos.create("video-01", **PROMPT)).id for _ in range(3)]
            page = await client.videos.list(limit=2)
            assert [g.id async for g in page] == ids[::-1]
            following = await page.next_page()
            assert following and [g.id for g in following.data] == [ids[0]]
            assert not following.has_more and await following.next_page() is None
            assert (await client.videos.quote("video-01", **PROMPT)).credits_used
            cancelled = await client.videos.cancel(ids[2])
            assert cancelled.error and cancelled.error.name == "Cancelled"
            with pytest.raises(ConflictError):
                await client.videos.cancel(ids[2])
            await client.videos.delete(ids[1])
            with pytest.raises(NotFoundError):
                await client.videos.get(ids[1])
            instant.work()
            # A finished job's stream replays its events, the terminal one last, and
            # `last_event_id` starts after one of them.
            events = [event async for event in client.videos.stream(ids[0])]
            assert events[0].generation.status == "queued" and events[-1].done
            assert events[-1].generation.completed and events[-1].generation.video
            numbers = [e.id or 0 for e in events]
            assert numbers == sorted(set(numbers)) and 0 not in numbers
            rest = client.videos.stream(ids[0], last_event_id=events[0].id)
            assert [e.id async for e in rest] == numbers[1:]

    asyncio.run(main())


# ----------------------------------------------------------------------------- real server
def test_a_submit_whose_answer_was_lost_is_retried_into_one_job(
    server: KinemaServer, media: MediaServer
) -> None:
    key = fresh_key(server, "lost-answers")
    body: dict[str, Any] = {"image_url": f"{media.base}/wide.jpg", "prompt": "pan"}
    with Proxy(server.base_url) as proxy, Client(proxy.base_url, key, max_retries=3) as client:
        busy = Answer(503, {"message": "busy"}, {"Retry-After": "0"})
        proxy.queue("POST", GENERATIONS, Lose(), busy)  # made but unanswered, then refused
        made = client.videos.create("video-01", **body)
        posts = proxy.seen("POST", GENERATIONS)
        assert len(posts) == 3 and len({p.headers["idempotency-key"] for p in posts}) == 1
        assert [p.status for p in posts] == [201, 0, 201]
        assert posts[2].answer_headers.get("idempotent-replayed") == "true"
        assert [g.id for g in client.videos.list()] == [made.id]  # one job, not two
        other = client.videos.create("video-01", **body)  # a new call: a new key, a new job
        assert other.id != made.id
        assert proxy.seen("POST", GENERATIONS)[-1].headers["idempotency-key"] not in {
            p.headers["idempotency-key"] for p in posts
        }
        for generation_id in (made.id, other.id):  # leave the shared worker free
            client.videos.delete(generation_id)


def test_stream_resumes_after_dropped_connections(server: KinemaServer, media: MediaServer) -> None:
    with Proxy(server.base_url, cut_after=2) as proxy, Client(proxy.base_url, server.key) as c:
        # 1080p: long enough (seconds of encoding) for several progress events even on a
        # fast machine; the assertions below follow the number of events that came.
        job = c.videos.create(
            "pixverse/v5/image-to-video", **{**image_job(media), "resolution": "1080p"}
        )
        events = list(c.videos.stream(job))
        opened = proxy.seen("GET", EVENTS)

        async def replay_async() -> list[GenerationEvent[Any]]:
            async with AsyncClient(proxy.base_url, server.key) as aclient:
                return [event async for event in aclient.videos.stream(job.id)]

        cut_async = asyncio.run(replay_async())
    with Client(server.base_url, server.key) as direct:
        replay = list(direct.videos.stream(job.id))  # the whole log, in one connection
        tail = list(direct.videos.stream(job.id, last_event_id=replay[2].id))
    numbers = [e.id or 0 for e in events]
    assert numbers == [e.id for e in replay] == [e.id for e in cut_async]  # each event once
    assert numbers == sorted(set(numbers)) and [e.id for e in tail] == numbers[3:]
    # Each connection was cut partway into its third event; the next one resumed after
    # the second: the cut event's `id:` line did not count.
    # At most two whole events per connection: one connection per two events.
    assert len(opened) == (len(numbers) + 1) // 2 and opened[0].headers.get("last-event-id") is None
    resumed = [r.headers.get("last-event-id") for r in opened[1:]]
    assert resumed == [str(n) for n in numbers[1::2]][: len(resumed)]
    kinds = [(e.event, e.generation.status) for e in events]
    assert kinds[0] == ("status", "queued") and ("status", "generating") in kinds
    assert sum(kind == "progress" for kind, _ in kinds) >= 1 and events[-1].done
    assert events[-1].generation.video and all(e.generation.id == job.id for e in events)


def test_wait_follows_the_stream_and_falls_back_to_polling(
    server: KinemaServer, media: MediaServer
) -> None:
    job: dict[str, Any] = {"image_url": f"{media.base}/wide.jpg", "prompt": "pan"}
    with Proxy(server.base_url) as proxy, Client(proxy.base_url, server.key) as client:
        seen: list[tuple[str, float | None]] = []
        done = client.videos.generate(
            "video-01",
            **job,
            timeout=120,
            on_progress=lambda g: seen.append((g.status, g.progress)),
        )
        assert done.completed and proxy.seen("GET", EVENTS)
        assert proxy.seen("GET", GENERATIONS) == []  # not one poll: the stream said it all
        progress = [p for status, p in seen if status == "generating" and p]
        assert seen[-1][0] == "completed" and progress and progress == sorted(progress)
        # A server without the route (an older Kinema, the hosted API): wait polls, and
        # the client does not ask for streams again.
        proxy.always("GET", EVENTS, MISSING_EVENTS)
        assert client.videos.wait(done.id).id == done.id
        assert client.videos.wait(done).completed
        assert len(proxy.seen("GET", EVENTS)) == 2 and len(proxy.seen("GET", GENERATIONS)) == 2
        with pytest.raises(NotFoundError, match="Cannot GET"):  # asked for explicitly
            list(client.videos.stream(done.id))
    # A stream that keeps failing: max_retries attempts more, then polling.
    with Proxy(server.base_url) as proxy, Client(proxy.base_url, server.key, max_retries=1) as c:
        proxy.always("GET", EVENTS, Answer(503, {"message": "down"}, {"Retry-After": "0"}))
        assert c.videos.wait(done.id, poll_interval=0.1).completed
        assert len(proxy.seen("GET", EVENTS)) == 2 and len(proxy.seen("GET", GENERATIONS)) == 1
        # The key holds the most streams allowed: poll at once rather than wait that out.
        full = Answer(429, {"message": "too many open streams"}, {"Retry-After": "100"})
        proxy.always("GET", EVENTS, full)
        start = time.monotonic()
        assert c.videos.wait(done.id).completed and time.monotonic() - start < 5
        assert len(proxy.seen("GET", EVENTS)) == 3 and len(proxy.seen("GET", GENERATIONS)) == 2
        proxy.always("GET", EVENTS, None)  # no missing route: the next wait streams again
        assert c.videos.wait(done.id).completed and len(proxy.seen("GET", EVENTS)) == 4


def test_deadline_bounds_a_stalled_stream(server: KinemaServer, media: MediaServer) -> None:
    with Proxy(server.base_url, cut_after=1, stall=10) as proxy:
        with Client(proxy.base_url, server.key) as client:
            job = client.videos.create("pixverse/v5/image-to-video", **image_job(media))
            start = time.monotonic()
            with pytest.raises(DeadlineExceeded) as late:
                client.videos.wait(job, timeout=1.5)
            assert 1.4 <= time.monotonic() - start < 3  # not the stall, nor the idle timeout
            assert late.value.generation_id == job.id and late.value.last is not None

        async def main() -> float:
            async with AsyncClient(proxy.base_url, server.key) as aclient:
                begun = time.monotonic()
                with pytest.raises(DeadlineExceeded):
                    await aclient.videos.wait(job.id, timeout=1.0)
                return time.monotonic() - begun

        assert 0.9 <= asyncio.run(main()) < 2.5
    with Client(server.base_url, server.key) as direct:
        direct.videos.delete(job.id)  # leave the shared worker free


def test_stream_errors_map_to_types(server: KinemaServer) -> None:
    with Client(server.base_url, server.key) as client:
        with pytest.raises(NotFoundError, match="no-such-generation"):
            list(client.videos.stream("no-such-generation"))
        with pytest.raises(ValueError):
            client.videos.stream("")
    with Client(server.base_url, "kn-wrong") as wrong, pytest.raises(AuthenticationError):
        list(wrong.videos.stream("x"))
    with (
        FlakyServer() as fake,  # an older server: no such route
        Client(fake.base_url, "k") as old,
        pytest.raises(NotFoundError, match="Cannot GET"),
    ):
        list(old.videos.stream("g"))


def test_the_webhook_verifier_is_part_of_the_sdk() -> None:
    from standardwebhooks import Webhook

    from kinema import client
    from kinema.client import WebhookVerificationFailed, verify_webhook

    assert "verify_webhook" in client.__all__
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    payload = json.dumps({"type": "generation.completed", "data": {"id": "g1"}})
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", now, payload),
    }  # fmt: skip
    assert verify_webhook(payload.encode(), headers, secret)["data"] == {"id": "g1"}
    with pytest.raises(WebhookVerificationFailed):
        verify_webhook(payload.replace("g1", "g2"), headers, secret)
