"""Webhooks: Standard Webhooks signatures (checked with the official `standardwebhooks`
package), retries from the durable outbox under one `webhook-id`, per-key endpoints with
their own secrets and events, exactly one send per attempt however many dispatchers
race, a server SIGKILLed while a delivery is due, the routes, the CLI and the SSRF
refusals. Real HTTP receivers on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from standardwebhooks import Webhook, WebhookVerificationError

from kinema.client.webhooks import WebhookVerificationFailed, verify_webhook
from kinema.dialects.aimlapi import status_of
from kinema.errors import ValidationFailed
from kinema.jobs.model import Completed, Failed, VideoOutput
from kinema.settings import Settings
from kinema.storage import open_storage
from kinema.store import JobStore, NewJob, open_store
from kinema.webhooks import check_webhook_url
from kinema.webhooks.dispatcher import Dispatcher
from kinema.webhooks.endpoints import add_endpoint
from kinema.webhooks.signing import encode, new_secret, signed_headers
from tests.support import TEST_KEY, KinemaServer, free_port

PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CAPABILITY = "webhook-test"  # no engine serves it: jobs are moved by the tests themselves
Request = tuple[dict[str, str], bytes, float]  # headers, body, monotonic arrival time


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kinema.db'}"
        return
    schema = "kinema_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[JobStore]:
    s = open_store(db_url, wakeup=False)
    yield s
    s.close()


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST and answers with
    `respond(headers, body)` (default 204)."""

    def __init__(self, respond: Callable[[dict[str, str], bytes], int] | None = None) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.respond = respond or (lambda headers, body: 204)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append((headers, body, time.monotonic()))
                status = receiver.respond(headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.httpd.request_queue_size = 64  # concurrent senders: no SYN-retry stalls
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, count: int, timeout: float = 15) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.requests)} webhooks arrived, expected {count}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def failing_first(times: int) -> Callable[[dict[str, str], bytes], int]:
    """Answer 500 to the first `times` attempts of every webhook-id, then 204."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def respond(headers: dict[str, str], body: bytes) -> int:
        with lock:
            seen[headers["webhook-id"]] += 1
            return 500 if seen[headers["webhook-id"]] <= times else 204

    return respond


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path, "allow_private_urls": True, "webhook_poll_seconds": 0.05,
        "webhook_retry_seconds": [0.2, 0.2, 0.2], "webhook_timeout_seconds": 2.0,
    }  # fmt: skip
    return Settings(**{**values, **overrides})


def finished_job(
    store: JobStore, key_id: str, webhook_url: str | None = None, failed: bool = False
) -> str:
    """A job taken through claim and finish (its events queue their deliveries)."""
    job = store.create_job(
        NewJob(key_id, "unified", "video-01", CAPABILITY, {"prompt": "p"}, 10, 3,
               webhook_url=webhook_url)
    )  # fmt: skip
    claimed = store.claim("test-worker", [CAPABILITY], 30)
    assert claimed is not None and claimed.id == job.id
    outcome: Completed | Failed
    if failed:
        outcome = Failed("GenerationError", "the engine gave up")
    else:
        video = VideoOutput(job.id, "video/mp4", "v.mp4", 1000, 5.0, 1280, 720, False)
        outcome = Completed(video, 10)
    assert store.finish(job.id, "test-worker", outcome)
    return job.id


def drain(dispatcher: Dispatcher) -> int:
    """Run passes until nothing is due; how many attempts were made."""
    made = 0
    while sent := dispatcher.run_once(limit=50):
        made += sent
    return made


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------ signing and URLs
def test_signatures_verify_with_standardwebhooks_and_the_sdk_helper() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = encode({"type": "generation.completed", "data": {"id": "g", "prompt": "café"}})
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body.encode(), headers)["data"]["prompt"] == "café"
    assert verify_webhook(body.encode(), httpx.Headers(headers), secret)["type"] == (
        "generation.completed"
    )
    assert verify_webhook(body, headers, secret)["data"]["id"] == "g"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    for bad_body, bad_headers, bad_secret in [
        (body.replace("g", "h"), headers, secret),  # tampered
        (body, {**headers, "webhook-id": "msg_2"}, secret),  # replayed under another id
        (body, signed_headers(secret, "msg_1", int(time.time()) - 3600, body), secret),  # old
        (body, headers, new_secret()),  # another endpoint's secret
        (body, {"webhook-id": "msg_1"}, secret),  # headers missing
        (b"\xff", headers, secret),  # not UTF-8
        (body, headers, "whsec_not*base64"),
    ]:
        with pytest.raises(WebhookVerificationFailed):
            verify_webhook(bad_body, bad_headers, bad_secret)


def test_webhook_urls_are_https_and_never_private(tmp_path: Path) -> None:
    strict = Settings(data_dir=tmp_path)
    check_webhook_url("https://hooks.example.com/kinema?x=1", strict)
    refused = [
        "http://hooks.example.com/kinema",  # plain http: development only
        "https://10.1.2.3/hook", "https://127.0.0.1:8443/hook", "https://[::1]/hook",
        "https://169.254.169.254/latest", "https://localhost/hook", "https://2130706433/",
        "https://user:pw@hooks.example.com/", "ftp://hooks.example.com/", "data:,x", "",
        "https://" + "a" * 3000 + ".com/",
    ]  # fmt: skip
    for url in refused:
        with pytest.raises(ValidationFailed) as caught:
            check_webhook_url(url, strict)
        assert status_of(caught.value) == 400
        [problem] = caught.value.problems
        assert problem.field == "webhook_url", url
    with pytest.raises(ValidationFailed) as caught:
        check_webhook_url("https://10.1.2.3/hook", strict)
    assert "private" in caught.value.problems[0].message
    allowed = Settings(data_dir=tmp_path, url_allowlist=["hooks.internal"])
    check_webhook_url("https://hooks.internal/kinema", allowed)
    development = Settings(data_dir=tmp_path, allow_private_urls=True)
    check_webhook_url("http://127.0.0.1:9000/hook", development)


# ------------------------------------------------------------------------ delivery
def test_fails_twice_then_delivered_three_attempts_one_webhook_id(
    store: JobStore, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.respond = failing_first(2)
    key, _ = store.create_key("k", None)
    job_id = finished_job(store, key.id, webhook_url=receiver.url)
    settings = settings_for(tmp_path)
    dispatcher = Dispatcher(store, settings, open_storage(settings)).start()
    try:
        got = receiver.wait(3)
        wait_until(lambda: store.webhook_deliveries(job_id)[0].status == "delivered")
    finally:
        dispatcher.stop()
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for headers, _, _ in got}) == 1
    assert len({body for _, body, _ in got}) == 1  # rendered once, the same on every retry
    secret = store.webhook_secret(key.id)
    events = [Webhook(secret).verify(body, headers) for headers, body, _ in got]
    event = events[0]
    assert event["type"] == "generation.completed"
    assert event["timestamp"].endswith("Z")
    assert event["data"]["id"] == job_id and event["data"]["status"] == "completed"
    assert event["data"]["video"]["url"].startswith("http://127.0.0.1:8000/")
    gaps = [b[2] - a[2] for a, b in pairwise(got)]
    assert all(gap >= 0.15 for gap in gaps), gaps  # the retry schedule's 0.2 s
    [delivery] = store.webhook_deliveries(job_id)
    assert delivery.webhook_id == got[0][0]["webhook-id"]
    assert [(a.attempt, a.status_code) for a in delivery.attempts] == [
        (1, 500), (2, 500), (3, 204),
    ]  # fmt: skip
    assert delivery.next_attempt_at is None and delivery.delivered_at is not None
    assert drain(Dispatcher(store, settings, open_storage(settings))) == 0  # nothing left


def test_endpoints_have_their_own_secrets_and_events(
    store: JobStore, receiver: Receiver, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    key, _ = store.create_key("k", None)
    other, _ = store.create_key("other", None)
    everything = Receiver()
    try:
        plain = add_endpoint(store, settings, key.id, receiver.url)
        opted_in = add_endpoint(
            store, settings, key.id, everything.url, ["started,progress", "generation.failed"]
        )
        assert opted_in.events == ["generation.failed", "generation.started", "generation.progress"]
        assert plain.secret != opted_in.secret != store.webhook_secret(key.id)
        job = store.create_job(NewJob(key.id, "unified", "video-01", CAPABILITY, {}, 10, 3))
        store.create_job(NewJob(other.id, "unified", "video-01", CAPABILITY, {}, 10, 3))
        assert store.claim("w", [CAPABILITY], 30) is not None  # started
        store.heartbeat(job.id, "w", 30, 50)  # a progress event
        store.finish(job.id, "w", Failed("GenerationError", "no"))
        dispatcher = Dispatcher(store, settings, open_storage(settings))
        assert drain(dispatcher) == 4
        [(headers, body, _)] = receiver.requests
        assert Webhook(plain.secret).verify(body, headers)["type"] == "generation.failed"
        with pytest.raises(WebhookVerificationError):
            Webhook(opted_in.secret).verify(body, headers)
        received = [Webhook(opted_in.secret).verify(b, h) for h, b, _ in everything.requests]
        assert sorted(e["type"] for e in received) == [
            "generation.failed", "generation.progress", "generation.started",
        ]  # fmt: skip
        assert {e["data"]["id"] for e in received} == {job.id}
        assert store.remove_webhook_endpoint(plain.id, other.id) is None  # not theirs
        assert store.remove_webhook_endpoint(plain.id, key.id) == plain
        assert [e.id for e in store.webhook_endpoints(key.id)] == [opted_in.id]
    finally:
        everything.close()


def test_racing_dispatchers_send_each_attempt_exactly_once(
    db_url: str, store: JobStore, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.respond = failing_first(1)
    settings = settings_for(tmp_path, webhook_retry_seconds=[0.05], webhook_concurrency=4)
    key, _ = store.create_key("k", None)
    jobs = [finished_job(store, key.id, receiver.url) for _ in range(30)]
    stores = [open_store(db_url, run_migrations=False, wakeup=False) for _ in range(3)]
    dispatchers = [Dispatcher(s, settings, open_storage(settings)).start() for s in stores]
    try:
        receiver.wait(60)
        wait_until(
            lambda: all(d.status == "delivered" for j in jobs for d in store.webhook_deliveries(j))
        )
        time.sleep(0.2)  # anything sent twice would arrive now
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()
        for s in stores:
            s.close()
    per_id = Counter(headers["webhook-id"] for headers, _, _ in receiver.requests)
    assert len(per_id) == 30 and set(per_id.values()) == {2}, per_id
    for job_id in jobs:
        [delivery] = store.webhook_deliveries(job_id)
        assert [(a.attempt, a.status_code) for a in delivery.attempts] == [(1, 500), (2, 204)]


def test_refused_unreachable_and_slow_receivers_are_recorded(
    receiver: Receiver, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}", wakeup=False)
    slow = Receiver(lambda headers, body: time.sleep(1.0) or 204)  # type: ignore[func-returns-value]
    try:
        key, _ = store.create_key("k", None)
        private = finished_job(store, key.id, receiver.url.replace("http:", "https:"))
        plain_http = finished_job(store, key.id, receiver.url)
        settings = settings_for(
            tmp_path, allow_private_urls=False, url_allowlist=["127.0.0.2"],
            webhook_retry_seconds=[0.05], webhook_timeout_seconds=0.3,
        )  # fmt: skip
        assert Dispatcher(store, settings, open_storage(settings)).run_once() == 2
        # Destinations the policy refuses (a name that came to resolve to a private
        # address, an operator who turned development mode off): never sent, and given up
        # at once, since no retry can help.
        [refused] = store.webhook_deliveries(private)
        assert refused.status == "failed" and len(refused.attempts) == 1
        assert "private" in (refused.attempts[0].error or "")
        [insecure] = store.webhook_deliveries(plain_http)
        assert insecure.status == "failed" and "https" in (insecure.attempts[0].error or "")
        assert receiver.requests == []

        named = finished_job(store, key.id, receiver.url.replace("127.0.0.1", "localhost"))
        closed = finished_job(store, key.id, f"http://127.0.0.1:{free_port()}/hook")
        late = finished_job(store, key.id, slow.url)
        lenient = Dispatcher(store, settings.model_copy(update={"allow_private_urls": True}),
                             open_storage(settings))  # fmt: skip
        time.sleep(0.1)
        drain(lenient)
        time.sleep(0.1)
        drain(lenient)
        [resolved] = store.webhook_deliveries(named)  # a name: resolved, checked, pinned
        assert resolved.status == "delivered"
        assert receiver.requests[0][0]["host"] == receiver.url.split("/")[2].replace(
            "127.0.0.1", "localhost"
        )
        [unreachable] = store.webhook_deliveries(closed)
        assert unreachable.status == "failed"
        assert [a.error for a in unreachable.attempts] == ["the connection failed"] * 2
        [timed_out] = store.webhook_deliveries(late)
        assert timed_out.status == "failed" and len(timed_out.attempts) == 2
        assert all(a.error == "no response within 0.3 s" for a in timed_out.attempts)
        assert all(250 < a.latency_ms < 1000 for a in timed_out.attempts)
    finally:
        slow.close()
        store.close()


# ------------------------------------------------------------------- routes and CLI
def test_routes_secret_endpoints_attempts_and_redeliver(receiver: Receiver, tmp_path: Path) -> None:
    from kinema.testing import InstantEngine, in_process

    fail_completed_once = failing_first(1)
    receiver.respond = lambda headers, body: (
        fail_completed_once(headers, body) if b"generation.completed" in body else 204
    )
    settings = {"webhook_retry_seconds": [0.1], "webhook_poll_seconds": 0.05}
    with in_process(tmp_path, [InstantEngine()], **settings) as kinema, kinema.client() as c:
        key = kinema.store.authenticate(TEST_KEY)
        assert key is not None
        secret = c.get("/v2/webhooks/secret").json()["secret"]
        assert secret.startswith("whsec_") and secret == kinema.store.webhook_secret(key.id)
        assert c.get("/v2/webhooks/secret").json() == {"secret": secret}
        assert (
            c.get("/v2/webhooks/secret", headers={"Authorization": "Bearer x"}).status_code == 401
        )

        made = c.post(
            "/v2/webhooks/endpoints", json={"url": receiver.url, "events": ["started", "completed"]}
        )
        assert made.status_code == 201, made.text
        endpoint = made.json()
        assert endpoint["events"] == ["generation.completed", "generation.started"]
        assert endpoint["secret"].startswith("whsec_") and endpoint["secret"] != secret
        for body, field in [
            ({"url": receiver.url, "events": ["finished"]}, "events"),
            ({"url": "ftp://example.com/"}, "url"),
            ({"url": receiver.url, "extra": 1}, "extra"),
        ]:
            refused = c.post("/v2/webhooks/endpoints", json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["details"][0]["field"] == field
        assert [e["id"] for e in c.get("/v2/webhooks/endpoints").json()["data"]] == [endpoint["id"]]

        gen_id = c.post(
            "/v2/video/generations", json={"model": "video-01", "prompt": "fox"}
        ).json()["id"]
        kinema.work()
        dispatcher = Dispatcher(kinema.store, kinema.settings, kinema.storage)
        assert dispatcher.run_once() == 2  # started (delivered) and completed (a 500)
        listed = c.get("/v2/video/generations/webhooks", params={"generation_id": gen_id})
        assert listed.status_code == 200, listed.text
        by_event = {d["event"]: d for d in listed.json()["data"]}
        completed = by_event["generation.completed"]
        assert completed["status"] == "pending" and completed["next_attempt_at"] is not None
        assert [a["status_code"] for a in completed["attempts"]] == [500]
        assert completed["attempts"][0]["latency_ms"] > 0
        assert by_event["generation.started"]["status"] == "delivered"
        assert completed["endpoint_id"] == endpoint["id"] and completed["url"] == receiver.url
        time.sleep(0.15)
        assert drain(dispatcher) == 1
        done = c.get("/v2/video/generations/webhooks", params={"generation_id": gen_id}).json()
        completed = next(d for d in done["data"] if d["event"] == "generation.completed")
        assert completed["status"] == "delivered" and completed["next_attempt_at"] is None
        assert [a["status_code"] for a in completed["attempts"]] == [500, 204]

        again = c.post("/v2/video/generations/webhooks/redeliver", params={"generation_id": gen_id})
        assert again.status_code == 202, again.text
        assert {d["status"] for d in again.json()["data"]} == {"pending"}
        assert drain(dispatcher) == 2
        ids = [h["webhook-id"] for h, _, _ in receiver.requests]
        assert len(ids) == 5 and len(set(ids)) == 2  # redelivered under the same ids
        verified = [Webhook(endpoint["secret"]).verify(b, h) for h, b, _ in receiver.requests]
        assert {e["data"]["id"] for e in verified} == {gen_id}

        # Another key sees none of it; unknown ids are 404s.
        _, other = kinema.store.create_key("other", None)
        other_auth = {"Authorization": f"Bearer {other}"}
        for method, path in [("GET", "/v2/video/generations/webhooks"),
                             ("POST", "/v2/video/generations/webhooks/redeliver")]:  # fmt: skip
            assert (
                c.request(
                    method, path, params={"generation_id": gen_id}, headers=other_auth
                ).status_code
                == 404
            )
            assert c.request(method, path, params={"generation_id": "nope"}).status_code == 404
            assert c.request(method, path).status_code == 400
        assert (
            c.delete(
                "/v2/webhooks/endpoints", params={"endpoint_id": endpoint["id"]}, headers=other_auth
            ).status_code
            == 404
        )

        removed = c.delete("/v2/webhooks/endpoints", params={"endpoint_id": endpoint["id"]})
        assert removed.json() == {"id": endpoint["id"], "deleted": True}
        assert (
            c.delete("/v2/webhooks/endpoints", params={"endpoint_id": endpoint["id"]}).status_code
            == 404
        )

        # A generation that finished with no webhook: redeliver sends its final event to
        # the endpoints the key has now.
        quiet = c.post("/v2/video/generations", json={"model": "video-01", "prompt": "owl"}).json()[
            "id"
        ]
        kinema.work()
        assert (
            c.get("/v2/video/generations/webhooks", params={"generation_id": quiet}).json()["data"]
            == []
        )
        late = c.post("/v2/webhooks/endpoints", json={"url": receiver.url}).json()
        c.post("/v2/video/generations/webhooks/redeliver", params={"generation_id": quiet})
        assert drain(dispatcher) == 1
        headers, body, _ = receiver.requests[-1]
        event = Webhook(late["secret"]).verify(body, headers)
        assert (event["type"], event["data"]["id"]) == ("generation.completed", quiet)


def test_openapi_documents_the_routes_and_the_events(tmp_path: Path) -> None:
    # On a bare app with only these routes: what the webhook module adds to the document.
    from fastapi import FastAPI

    from kinema.api import openapi
    from kinema.api import webhooks as webhook_routes
    from kinema.api.auth import Authenticator

    store = open_store(f"sqlite:///{tmp_path / 'k.db'}", wakeup=False)
    app = FastAPI()
    openapi.install(app, [])
    webhook_routes.install(app, store, Authenticator(store, 1.0), settings_for(tmp_path))
    schema = app.openapi()
    store.close()
    for path in ("/v2/webhooks/secret", "/v2/webhooks/endpoints", "/v2/video/generations/webhooks",
                 "/v2/video/generations/webhooks/redeliver"):  # fmt: skip
        assert path in schema["paths"]
    listing = schema["paths"]["/v2/video/generations/webhooks"]["get"]["responses"]
    assert listing["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/WebhookDeliveries"
    )
    assert set(schema["webhooks"]) == {
        "generation.completed", "generation.failed", "generation.cancelled",
        "generation.started", "generation.progress",
    }  # fmt: skip
    assert "WebhookEvent" in schema["components"]["schemas"]


def test_submit_webhook_url_is_signed_with_the_keys_secret_and_ssrf_checked(
    receiver: Receiver, tmp_path: Path
) -> None:
    from kinema.testing import InstantEngine, in_process

    fox = {"model": "video-01", "prompt": "A fox."}
    with in_process(tmp_path / "dev", [InstantEngine()]) as kinema, kinema.client() as c:
        made = c.post("/v2/video/generations", params={"webhook_url": receiver.url}, json=fox)
        assert made.status_code == 201, made.text
        kinema.work()
        assert Dispatcher(kinema.store, kinema.settings, kinema.storage).run_once() == 1
        [(headers, body, _)] = receiver.requests
        secret = c.get("/v2/webhooks/secret").json()["secret"]
        event = Webhook(secret).verify(body, headers)
        assert (event["type"], event["data"]["id"]) == ("generation.completed", made.json()["id"])
    strict = {"allow_private_urls": False}
    with in_process(tmp_path / "prod", [InstantEngine()], **strict) as kinema, kinema.client() as c:
        for url in ("https://10.0.0.7/hook", "https://localhost/hook", receiver.url):
            refused = c.post("/v2/video/generations", params={"webhook_url": url}, json=fox)
            assert refused.status_code == 400, refused.text
            assert refused.json()["details"][0]["field"] == "webhook_url"
        assert kinema.store.list_jobs(kinema.store.list_keys()[0].id, limit=10) == []


def test_cli_manages_endpoints_and_shows_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kinema.cli import main

    data = str(tmp_path / "k")
    assert main(["keys", "create", "--data-dir", data, "--name", "ci"]) == 0
    key_secret = capsys.readouterr().out.strip().splitlines()[-1]
    prefix = key_secret[:10]
    url = "https://hooks.example.com/kinema"
    assert (
        main(
            ["webhooks", "add", "--data-dir", data, prefix, url, "--events", "started", "completed"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "generation.completed, generation.started" in out and "whsec_" in out
    endpoint_id = out.split()[2]
    assert main(["webhooks", "list", "--data-dir", data, prefix]) == 0
    assert f"{endpoint_id}" in capsys.readouterr().out
    assert main(["webhooks", "secret", "--data-dir", data, prefix]) == 0
    shown = capsys.readouterr().out.strip()
    store = open_store(f"sqlite:///{tmp_path / 'k' / 'kinema.db'}", wakeup=False)
    key = store.authenticate(key_secret)
    assert key is not None and shown == store.webhook_secret(key.id)
    store.close()
    assert main(["webhooks", "add", "--data-dir", data, prefix, "https://10.0.0.7/hook"]) == 2
    assert "url:" in capsys.readouterr().err
    assert main(["webhooks", "add", "--data-dir", data, "kn-nothere", url]) == 1
    assert main(["webhooks", "remove", "--data-dir", data, endpoint_id]) == 0
    assert main(["webhooks", "remove", "--data-dir", data, endpoint_id]) == 1


# ------------------------------------------------------------------ real processes
def test_server_killed_while_a_delivery_is_due_delivers_it_once(
    db_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.respond = failing_first(1)
    store = open_store(db_url, wakeup=False)  # migrated before the servers start
    env = {
        "KINEMA_DATABASE_URL": db_url, "KINEMA_ENGINES": "motion",
        "KINEMA_WEBHOOK_RETRY_SECONDS": "[1.5, 0.2]", "KINEMA_WEBHOOK_POLL_SECONDS": "0.1",
    }  # fmt: skip
    first = KinemaServer(tmp_path / "k", workers=2, **env).start()
    try:
        with first.client() as c:
            made = c.post("/v2/webhooks/endpoints", json={"url": receiver.url})
            assert made.status_code == 201, made.text
        key = store.authenticate(TEST_KEY)
        assert key is not None
        job_id = finished_job(store, key.id, failed=True)
        receiver.wait(1)  # the first attempt: a 500, retried 1.5 s later
        wait_until(lambda: len(store.webhook_deliveries(job_id)[0].attempts) == 1)
    finally:
        first.kill_all()  # the API process and both workers, while the retry is pending
    [pending] = store.webhook_deliveries(job_id)
    assert pending.status == "pending" and pending.next_attempt_at is not None
    time.sleep(max(0.0, pending.next_attempt_at - time.time()) + 0.2)  # due, nobody alive
    second = KinemaServer(tmp_path / "k", workers=1, **env).start()
    try:
        got = receiver.wait(2, timeout=30)
        with second.client() as c:
            wait_until(
                lambda: c.get(
                    "/v2/video/generations/webhooks", params={"generation_id": job_id}
                ).json()["data"][0]["status"] == "delivered"
            )  # fmt: skip
            time.sleep(0.5)  # a second send by another process would arrive now
            listed = c.get("/v2/video/generations/webhooks", params={"generation_id": job_id})
        endpoint_secret = store.webhook_endpoints(key.id)[0].secret
    finally:
        second.stop()
        store.close()
    assert len(receiver.requests) == 2
    assert len({headers["webhook-id"] for headers, _, _ in got}) == 1
    event = Webhook(endpoint_secret).verify(got[1][1], got[1][0])
    assert (
        event["type"] == "generation.failed" and event["data"]["error"]["name"] == "GenerationError"
    )
    [delivery] = listed.json()["data"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 204]
    assert json.loads(got[0][1]) == json.loads(got[1][1])
