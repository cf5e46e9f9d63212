"""Live events of a generation: `GET /v2/video/generations/events?generation_id=ID` as a
`text/event-stream` (Server-Sent Events).

One SSE event per entry of the job's event log (`JobQueue.events`): `id:` is the log
entry's id (monotonic), `event:` is `status` or `progress`, `data:` is the poll body
(`Dialect.render_poll`) of the job in that event's state, rendered when it is sent (so a
completed event carries a freshly signed video URL). A `: keep-alive` comment goes out
when nothing was sent for `KEEPALIVE_SECONDS`; the stream closes after the terminal
status event (`completed` or `error`), or when the job is deleted.

Resuming: a client that reconnects with `Last-Event-ID: N` (EventSource does it by
itself) gets exactly the events after N: nothing twice, nothing lost. Reconnecting after
the terminal event answers 204, which tells an EventSource to stop reconnecting.

Every replica serves every stream: the state lives only in the job store. One task per
API process (`EventHub`) asks the store every `poll_seconds` for the newest event id of
all the jobs its open streams watch (one query, whatever the number of streams) and wakes
the streams whose job moved; each stream then reads its own job's new events. A job's
events are written in the same transaction as its status or progress change, so what a
stream reads is committed and in order.

The cap on open streams (`KINEMA_MAX_STREAMS_PER_KEY`, 429 + Retry-After above it) is
counted per API process: behind a load balancer a key may hold that many on each replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from kinema.api.auth import Authenticator
from kinema.dialects import Dialect
from kinema.dialects.aimlapi import ErrorEnvelope
from kinema.errors import NotFound, TooManyRequests
from kinema.jobs.model import Status
from kinema.settings import Settings
from kinema.storage import BlobStorage
from kinema.store import JobEvent, JobQueue, JobStatus

log = logging.getLogger("kinema.api")

PATH = "/v2/video/generations/events"
KEEPALIVE_SECONDS = 15.0  # a comment line when nothing else was sent for this long
LOCAL_POLL_SECONDS = 0.1  # how often the hub asks a local store (SQLite) for new events
REMOTE_POLL_SECONDS = 0.2  # ... and a remote one (PostgreSQL): one query per API process
KEEPALIVE = b": keep-alive\n\n"
ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
T = TypeVar("T")


class Watcher:
    """One open stream as the hub sees it: its job, the last event id it sent, and the
    flag the hub raises when the job has newer events (or disappeared)."""

    __slots__ = ("job_id", "last", "reported", "wake")

    def __init__(self, job_id: str, last: int) -> None:
        self.job_id = job_id
        self.last = last
        self.reported: int | None = -1  # the newest id the hub last saw (None: no events)
        self.wake = asyncio.Event()


class EventHub:
    """Watches the jobs of this process's open streams with one store read per interval
    (`JobQueue.latest_event_ids`), on the event loop that serves the streams."""

    def __init__(self, store: JobQueue, poll_seconds: float) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.watchers: dict[str, set[Watcher]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, job_id: str, last: int) -> Watcher:
        watcher = Watcher(job_id, last)
        self.watchers.setdefault(job_id, set()).add(watcher)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        same_job = self.watchers.get(watcher.job_id)
        if same_job is not None:
            same_job.discard(watcher)
            if not same_job:
                del self.watchers[watcher.job_id]

    async def _run(self) -> None:
        while self.watchers:  # ends with the last stream; the next one starts it again
            await asyncio.sleep(self.poll_seconds)
            job_ids = list(self.watchers)
            if not job_ids:
                continue
            try:
                newest = await _call(self.store, self.store.latest_event_ids, job_ids)
            except Exception:  # a store outage: streams wait; the next tick asks again
                log.warning("event streams: reading new events failed", exc_info=True)
                continue
            for job_id in job_ids:
                top = newest.get(job_id)
                for watcher in self.watchers.get(job_id, ()):
                    if top != watcher.reported and (top is None or top > watcher.last):
                        watcher.wake.set()
                    watcher.reported = top


async def _call(store: JobQueue, fn: Callable[..., T], *args: Any) -> T:
    """A store read: inline when the store is local (SQLite), else on a worker thread."""
    if store.reads_are_local:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)


class StreamSlots:
    """Open streams per API key, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> Callable[[], None]:
        """A slot for `key_id` (TooManyRequests when it holds `limit` already) and the
        function that gives it back (idempotent)."""
        with self._lock:
            if self.open.get(key_id, 0) >= self.limit:
                raise TooManyRequests(
                    f"This key already has {self.limit} open event streams (the most one "
                    "key may hold on a server); close one or poll the generation instead."
                )
            self.open[key_id] = self.open.get(key_id, 0) + 1
        released = False

        def give_back() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self.open.get(key_id, 1) - 1
                if left > 0:
                    self.open[key_id] = left
                else:
                    self.open.pop(key_id, None)

        return give_back


def is_end(event: JobEvent) -> bool:
    """The terminal status event: the last one a stream sends."""
    return event.kind == "status" and event.status.is_terminal


def event_frame(event: JobEvent, data: dict[str, Any]) -> bytes:
    return f"id: {event.id}\nevent: {event.kind}\ndata: {ENCODE(data)}\n\n".encode()


def as_of(job: JobStatus, event: JobEvent) -> JobStatus:
    """The job as it was at `event`: `job` is its current state, never older than the
    event (read after it). A terminal event is the current state (it never changes)."""
    if event.status.is_terminal:
        return job
    position = job.queue_position if event.status == job.status == Status.QUEUED else 0
    return replace(
        job, status=event.status, progress=event.progress, credits_used=None, output=None,
        error_name=None, error_message=None, queue_position=position,
    )  # fmt: skip


class EventStream:
    """One client's stream: send the events after `last`, then each new one as the hub
    reports it, until the terminal event."""

    def __init__(
        self,
        hub: EventHub,
        render: Callable[[JobStatus], dict[str, Any]],
        job_id: str,
        key_id: str,
        last: int,
        keepalive_seconds: float,
    ) -> None:
        self.hub = hub
        self.store = hub.store
        self.render = render
        self.job_id = job_id
        self.key_id = key_id
        self.last = last
        self.keepalive_seconds = keepalive_seconds

    def _read(self) -> tuple[list[JobEvent], JobStatus | None]:
        # Events first, then the job: the job is at least as new as every event read.
        events = self.store.events(self.job_id, self.last)
        return events, self.store.get_status(self.job_id, self.key_id)

    async def run(self, send: Send) -> None:
        watcher = self.hub.watch(self.job_id, self.last)  # before the first read: no gap
        ended, sent_at = False, time.monotonic()
        try:
            while True:
                watcher.wake.clear()
                events, job = await _call(self.store, self._read)
                if job is None:
                    return  # deleted: nothing more will come
                frames, finished = [], False
                for event in events:
                    frames.append(event_frame(event, self.render(as_of(job, event))))
                    self.last = watcher.last = event.id
                    if is_end(event):
                        finished = True
                        break
                if frames:
                    await send(
                        {"type": "http.response.body", "body": b"".join(frames), "more_body": True}
                    )
                    sent_at = time.monotonic()
                if finished:
                    return
                if job.status.is_terminal:
                    # It ended after the events were read: its last event is committed now
                    # (same transaction as the status), so read once more, then stop.
                    if ended:
                        return
                    ended = True
                    continue
                quiet = time.monotonic() - sent_at
                with anyio.move_on_after(max(0.0, self.keepalive_seconds - quiet)) as idle:
                    await watcher.wake.wait()
                if idle.cancelled_caught:
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    sent_at = time.monotonic()
        finally:
            self.hub.unwatch(watcher)


# One server-sent event, as tools that parse the stream see it (schemathesis validates each).
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$",
               "description": "The event's sequence number."},
        "event": {"type": "string", "enum": ["status", "progress"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "The poll body (Generation) at this event."},
    },
    "required": ["data"],
}  # fmt: skip


class EventStreamResponse(Response):
    """`text/event-stream`, written by an `EventStream`; it stops when the client hangs up
    and always gives the stream's slot back."""

    media_type = "text/event-stream"

    def __init__(
        self, stream: EventStream | None = None, release: Callable[[], None] | None = None
    ) -> None:
        self.stream = stream
        self.release = release
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.init_headers(
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies: no buffering
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self.stream is None:
                return
            async with anyio.create_task_group() as group:

                async def hang_up() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(hang_up)
                try:
                    await self.stream.run(send)
                except OSError:  # the client went away mid-write
                    pass
                except Exception:
                    log.warning("event stream of %s failed", self.stream.job_id, exc_info=True)
                group.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass
        finally:
            if self.release is not None:
                self.release()


STREAM_DESCRIPTION = (
    "Server-Sent Events, one per status change and per progress step (5 %) of the "
    "generation: `id:` the event's sequence number, `event:` `status` or `progress`, "
    "`data:` the poll body (see `Generation`) of the job in that state. A `: keep-alive` "
    "comment is sent after 15 s without events; the stream ends after the terminal status "
    "event (`completed` or `error`) or when the generation is deleted. Reconnect with "
    "`Last-Event-ID` to resume after the last event received: every event arrives exactly "
    "once. Any API replica serves any stream."
)


def router(
    store: JobQueue,
    auth: Authenticator,
    dialect: Dialect,
    storage: BlobStorage,
    settings: Settings,
    *,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
    poll_seconds: float | None = None,
) -> APIRouter:
    api = APIRouter(tags=["Video generations"])
    if poll_seconds is None:
        poll_seconds = LOCAL_POLL_SECONDS if store.reads_are_local else REMOTE_POLL_SECONDS
    hub = EventHub(store, poll_seconds)
    slots = StreamSlots(settings.max_streams_per_key)
    ttl = settings.url_ttl_seconds

    def envelope(description: str, retry_after: bool = False) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{ErrorEnvelope.__name__}"}
        answer: dict[str, Any] = {
            "description": description, "content": {"application/json": {"schema": schema}},
        }  # fmt: skip
        if retry_after:
            wait = {"description": "Seconds to wait first.", "schema": {"type": "integer"}}
            answer["headers"] = {"Retry-After": wait}
        return answer

    @api.get(
        PATH,
        summary="Live events of a generation (Server-Sent Events)",
        description=STREAM_DESCRIPTION,
        response_class=EventStreamResponse,
        status_code=200,
        responses={
            200: {
                "description": "The event stream.",
                "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA, "example": (
                    'id: 17\nevent: progress\ndata: {"id":"…","status":"generating",'
                    '"model":"…","video":null,"error":null,"meta":{"usage":{"credits_used":'
                    '630000}},"progress":35,"queue_position":0}\n\n'
                )}},
            },
            204: {"description": "The generation finished and `Last-Event-ID` is its "
                  "last event: nothing more will come (EventSource stops reconnecting)."},
            400: envelope("Missing `generation_id`, or a malformed `Last-Event-ID`."),
            401: envelope("Missing, invalid or revoked API key."),
            404: envelope("No such generation (or another key's)."),
            429: envelope(
                "This key holds the most open event streams allowed "
                "(`KINEMA_MAX_STREAMS_PER_KEY`, per API process).",
                retry_after=True,
            ),
            503: envelope("The job store is unreachable; retry later."),
        },
        openapi_extra={"security": [{"bearer": []}]},
    )  # fmt: skip
    async def events(
        request: Request,
        generation_id: Annotated[str, Query(min_length=1, max_length=200)],
        last_event_id: Annotated[
            str,
            Header(
                alias="Last-Event-ID",
                pattern=r"^([0-9]{1,18})?$",
                description="Resume after this event id (empty or absent: from the start).",
            ),
        ] = "",
    ) -> Response:
        key = await _call(store, auth, request)
        job = await _call(store, store.get_status, generation_id, key.id)
        if job is None:
            raise NotFound(f"Generation '{generation_id}' was not found.")
        request.state.inference_id = generation_id
        after = int(last_event_id) if last_event_id else 0
        if job.status.is_terminal:
            # Read after the status, so the terminal event is among these unless the
            # client has it already: then nothing is left to send (204 stops EventSource).
            left = await _call(store, store.events, generation_id, after)
            if not any(is_end(event) for event in left):
                return Response(status_code=204)
        release = slots.take(key.id)
        base_url = settings.public_url or str(request.base_url)

        def render(state: JobStatus) -> dict[str, Any]:
            return dialect.render_poll(state, storage, base_url, ttl)[1]

        stream = EventStream(hub, render, generation_id, key.id, after, keepalive_seconds)
        return EventStreamResponse(stream, release)

    return api
