"""Live events (`GET /v2/video/generations/events`, Server-Sent Events) over real HTTP:
a stream dropped midway and resumed with `Last-Event-ID` delivers every event exactly
once and in order, ending with the terminal event, on SQLite and on PostgreSQL (where the
stream is served by an API replica that did not take the submit); the per-key cap on
open streams; another key's generation; keep-alive comments; a job deleted mid-stream."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support import KinemaServer, MediaServer, free_port

if TYPE_CHECKING:
    from kinema.testing import InProcess

PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SUBMIT = "/v2/video/generations"
EVENTS = "/v2/video/generations/events"
ENV = {"KINEMA_ENGINES": "motion", "KINEMA_DRAIN_SECONDS": "1"}


@dataclass
class Event:
    id: int
    event: str
    data: dict[str, Any]


@dataclass
class Stream:
    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False  # the server closed it (not us)


def read_stream(
    client: httpx.Client,
    generation_id: str,
    last: int | None = None,
    stop_after: int | None = None,
    headers: dict[str, str] | None = None,
    on_comment: Any = None,
) -> Stream:
    """Read an event stream (parsing the SSE wire format by hand); drop the connection
    after `stop_after` events."""
    sent = dict(headers or {})
    if last is not None:
        sent["Last-Event-ID"] = str(last)
    params = {"generation_id": generation_id}
    with client.stream("GET", EVENTS, params=params, headers=sent) as response:
        out = Stream(response.status_code, response.headers)
        if response.status_code != 200:
            response.read()
            return out
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                out.comments.append(line[1:].strip())
                if on_comment is not None:
                    on_comment(out)
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif fields:
                out.events.append(
                    Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                )
                fields = {}
                if stop_after is not None and len(out.events) >= stop_after:
                    return out  # leaving the block drops the connection mid-stream
        out.ended = True
    return out


def submit(client: httpx.Client, media: MediaServer) -> str:
    # A real motion job of a few seconds: about ten events (queued, generating, progress
    # steps, completed).
    image = f"{media.base}/landscape.png"
    r = client.post(SUBMIT, json={
        "model": "pixverse/v5/image-to-video", "prompt": "slow zoom", "image_url": image,
        "resolution": "720p", "duration": "8",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def assert_exactly_once(parts: list[Stream], replay: Stream, generation_id: str) -> None:
    received = [event for part in parts for event in part.events]
    ids = [event.id for event in received]
    assert ids == [event.id for event in replay.events], (ids, replay.events)
    assert ids == sorted(set(ids))
    kinds = [(event.event, event.data["status"]) for event in received]
    assert kinds[0] == ("status", "queued") and ("status", "generating") in kinds
    assert kinds[-1] == ("status", "completed")
    # How many progress events a job writes depends on how long it runs (at most one per
    # PROGRESS_PUSH_SECONDS), so their number is not checked here, only their content.
    for event in received:
        assert event.data["id"] == generation_id
        if event.event == "progress":
            assert event.data["status"] == "generating" and event.data["progress"] > 0
    assert received[-1].data["video"]["url"].startswith("http")
    assert replay.ended  # the server closes the stream after the terminal event


def resume_check(apis: list[KinemaServer], media: MediaServer) -> None:
    """Submit on the first API process; read the stream from the others in turn (from
    the first too when it is the only one), hanging up after every event."""
    readers = apis[1:] or apis
    with apis[0].client() as submitter:
        generation_id = submit(submitter, media)
    clients = [api.client() for api in readers]
    try:
        parts: list[Stream] = []
        last: int | None = None
        while not parts or parts[-1].events[-1].data["status"] not in ("completed", "error"):
            assert len(parts) < 60, parts
            if parts:
                time.sleep(0.2)  # events happen while nobody listens
            part = read_stream(clients[len(parts) % len(clients)], generation_id, last, 1)
            assert part.status == 200 and part.events, part
            assert part.headers["content-type"].startswith("text/event-stream")
            parts.append(part)
            last = part.events[-1].id
        # One event a connection: queued, generating and completed at least, so the log
        # came over three connections or more, however fast the job ran.
        assert len(parts) >= 3 and all(len(part.events) == 1 for part in parts)
        replay = read_stream(clients[-1], generation_id)  # the whole log, from the start
        outcome = replay.events[-1].data
        assert outcome["status"] == "completed", (outcome, apis[0].log())
        assert_exactly_once(parts, replay, generation_id)
        # Resuming after the terminal event: 204, which stops an EventSource reconnecting.
        done = read_stream(clients[0], generation_id, last=replay.events[-1].id)
        assert done.status == 204 and not done.events
    finally:
        for client in clients:
            client.close()


# ----------------------------------------------------------------------------- SQLite
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinemaServer]:
    server = KinemaServer(
        tmp_path_factory.mktemp("events"), workers=1, KINEMA_MAX_STREAMS_PER_KEY="2", **ENV
    )
    server.start()
    yield server
    server.stop()


def test_resume_after_a_dropped_connection_sqlite(api: KinemaServer, media: MediaServer) -> None:
    resume_check([api], media)


def test_another_keys_generation_and_bad_requests(api: KinemaServer, media: MediaServer) -> None:
    from kinema.store import open_store

    store = open_store(f"sqlite:///{api.data_dir / 'kinema.db'}", wakeup=False)
    try:
        _, other = store.create_key("other", None)
    finally:
        store.close()
    with api.client() as c:
        generation_id = submit(c, media)
        theirs = read_stream(c, generation_id, headers={"Authorization": f"Bearer {other}"})
        assert theirs.status == 404
        missing = read_stream(c, "no-such-generation")
        assert missing.status == 404
        anonymous = httpx.get(api.base_url + EVENTS, params={"generation_id": generation_id})
        assert anonymous.status_code == 401
        assert c.get(EVENTS).status_code == 400
        malformed = c.get(EVENTS, params={"generation_id": generation_id},
                          headers={"Last-Event-ID": "x"})  # fmt: skip
        assert malformed.status_code == 400


def test_open_streams_per_key_are_capped(api: KinemaServer, media: MediaServer) -> None:
    with api.client() as c:
        generation_id = submit(c, media)
    clients = [api.client() for _ in range(3)]
    params = {"generation_id": generation_id}
    try:
        held = [clients[i].stream("GET", EVENTS, params=params) for i in range(2)]
        responses = [cm.__enter__() for cm in held]
        assert [r.status_code for r in responses] == [200, 200]
        refused = clients[2].get(EVENTS, params=params)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json()["statusCode"] == 429
        held[0].__exit__(None, None, None)  # hang up one: its slot comes back
        deadline = time.monotonic() + 10
        while True:
            with clients[2].stream("GET", EVENTS, params=params) as again:
                if again.status_code == 200 or time.monotonic() > deadline:
                    break
            time.sleep(0.1)
        assert again.status_code == 200
        held[1].__exit__(None, None, None)
    finally:
        for client in clients:
            client.close()


# ------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = "kinema_events_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_resume_across_api_replicas_postgresql(
    pg_url: str, media: MediaServer, tmp_path: Path
) -> None:
    env = {**ENV, "KINEMA_DATABASE_URL": pg_url}
    # One process takes the submit and runs the worker; the other, API only, streams.
    taker = KinemaServer(tmp_path / "a", workers=1, **env).start()
    try:
        other = KinemaServer(tmp_path / "b", workers=0, **env).start()
        try:
            resume_check([taker, other], media)
        finally:
            other.stop()
    finally:
        taker.stop()


def test_latest_event_ids_on_both_stores(pg_url: str, tmp_path: Path) -> None:
    from kinema.store import NewJob, open_store

    for url in (f"sqlite:///{tmp_path / 'kinema.db'}", pg_url):
        store = open_store(url, wakeup=False)
        try:
            key, _ = store.create_key("k", None)
            new = NewJob(key.id, "unified", "video-01", "image-to-video", {"prompt": "p"}, 1, 3)
            one, two = store.create_job(new), store.create_job(new)
            newest = store.latest_event_ids([one.id, two.id, "missing"])
            assert newest == {job.id: store.events(job.id)[-1].id for job in (one, two)}
            store.delete_job(one.id, None)
            assert set(store.latest_event_ids([one.id, two.id])) == {two.id}
            assert store.latest_event_ids([]) == {}
        finally:
            store.close()


# ------------------------------------------------------------------- in-process server
BODY = {"model": "video-01", "prompt": "A red fox runs through fresh snow."}


@dataclass
class Live:
    service: InProcess
    client: httpx.Client  # the in-process app (submit, poll)
    streams: httpx.Client  # the events router on uvicorn, over real sockets


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """The events router with a short keep-alive and poll interval, wired to the parts
    create_app built, on uvicorn in this process."""
    import uvicorn
    from fastapi import FastAPI

    from kinema.api import events
    from kinema.api.errors import install
    from kinema.testing import InstantEngine, in_process

    with in_process(tmp_path, [InstantEngine()]) as service:
        fast = service.app.poll_fast_path
        assert fast is not None
        app = FastAPI()
        install(app, fast.render)
        app.include_router(
            events.router(
                service.store, fast.poller.auth, fast.dialects[-1], service.storage,
                service.settings, keepalive_seconds=0.2, poll_seconds=0.05,
            )
        )  # fmt: skip
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.02)
            base = f"http://127.0.0.1:{port}"
            with (
                service.client() as client,
                httpx.Client(base_url=base, headers=service.headers, timeout=10) as streams,
            ):
                yield Live(service, client, streams)
        finally:
            server.should_exit = True
            thread.join(10)


def test_keepalive_deletion_and_the_live_path(live: Live) -> None:
    """Comments while the job waits; the stream ends when the job is deleted; a job run
    to completion streams live to its end."""
    doomed = live.client.post(SUBMIT, json=BODY).json()["id"]

    def delete_after_two(stream: Stream) -> None:
        if len(stream.comments) == 2:
            assert live.service.store.delete_job(doomed, None) is not None

    gone = read_stream(live.streams, doomed, on_comment=delete_after_two)
    assert gone.ended and gone.comments == ["keep-alive", "keep-alive"]
    [queued] = gone.events
    assert queued.event == "status" and queued.data["status"] == "queued"
    assert queued.data["queue_position"] == 0

    job = live.client.post(SUBMIT, json=BODY).json()["id"]
    runner = threading.Timer(0.3, live.service.work)
    runner.start()
    streamed = read_stream(live.streams, job)
    runner.join()
    assert streamed.ended and streamed.events[-1].data["status"] == "completed"
    assert [e.data["status"] for e in streamed.events][:2] == ["queued", "generating"]
    replay = read_stream(live.streams, job).events
    assert [(e.id, e.event) for e in streamed.events] == [(e.id, e.event) for e in replay]


def test_a_failed_job_ends_at_its_terminal_event(live: Live) -> None:
    from kinema.store.rows import log_events

    store = live.service.store
    key = store.authenticate(live.service.settings.api_key or "")
    assert key is not None
    job = live.client.post(SUBMIT, json=BODY).json()["id"]
    store.cancel(job, key.id)
    # A progress write that lost a race with the finish lands after the terminal event
    # in the log; it must never be streamed.
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        log_events(conn, [job], "progress", "generating", 50, time.time())
    whole = read_stream(live.streams, job)
    assert whole.ended and [(e.event, e.data["status"]) for e in whole.events] == [
        ("status", "queued"), ("status", "error"),
    ]  # fmt: skip
    assert whole.events[-1].data["error"]["name"] == "Cancelled"
    queued, failed = whole.events
    tail = read_stream(live.streams, job, last=queued.id)
    assert tail.ended and [e.id for e in tail.events] == [failed.id]
    assert read_stream(live.streams, job, last=failed.id).status == 204


def test_openapi_documents_the_stream(tmp_path: Path) -> None:
    """The route's entry in the OpenAPI document (the router alone: create_app adds it
    to /openapi.json like every other router)."""
    from fastapi import FastAPI

    from kinema.api import events
    from kinema.testing import InstantEngine, in_process

    with in_process(tmp_path, [InstantEngine()]) as service:
        fast = service.app.poll_fast_path
        assert fast is not None
        app = FastAPI()
        app.include_router(
            events.router(
                service.store, fast.poller.auth, fast.dialects[-1], service.storage,
                service.settings,
            )
        )  # fmt: skip
        operation = app.openapi()["paths"][EVENTS]["get"]
        with service.client() as c:  # create_app serves it (refused here: no key)
            assert (
                c.get(
                    EVENTS, params={"generation_id": "x"}, headers={"Authorization": ""}
                ).status_code
                == 401
            )
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"204", "401", "404", "429"} <= set(operation["responses"])
    refused = operation["responses"]["429"]
    assert "Retry-After" in refused["headers"]
    # The error envelope the dialect publishes under components/schemas.
    schema = refused["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert operation["security"] == [{"bearer": []}]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"generation_id", "Last-Event-ID"}
