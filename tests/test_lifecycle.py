"""The lifecycle extensions of the AI/ML API contract: cancel, deadlines, idempotency,
list, delete, quotes — in-process (the worker stepped by hand) and, where the check is
about processes, against real `kinema serve` processes."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from kinema.testing import InProcess, InstantEngine, SlowEngine, in_process
from kinema.testing.engines import SlowOptions
from tests.support import KinemaServer, MediaServer

UNIFIED = "/v2/video/generations"
PROMPT = {"model": "video-01", "prompt": "A heron lifts off a misty lake."}


def poll(client: httpx.Client, gen_id: str) -> dict[str, object]:
    body: dict[str, object] = client.get(UNIFIED, params={"generation_id": gen_id}).json()
    return body


PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings for the job store: the default SQLite file, or a private PostgreSQL
    schema on the shared `test` database."""
    if request.param == "sqlite":
        yield {}
        return
    schema = "kinema_life_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield {"database_url": f"{PG_URL}?options=-csearch_path%3D{schema}"}
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def env_of(db: dict[str, str]) -> dict[str, str]:
    return {f"KINEMA_{name.upper()}": value for name, value in db.items()}


@pytest.fixture
def kinema(tmp_path: Path, db: dict[str, str]) -> Iterator[InProcess]:
    service = InProcess(tmp_path, [InstantEngine()], **db)
    yield service
    service.close()


def test_cancel_a_queued_job_and_refuse_finished_or_foreign(kinema: InProcess) -> None:
    with kinema.client() as c:
        gen_id = c.post(UNIFIED, json=PROMPT).json()["id"]
        cancelled = c.post(UNIFIED + "/cancel", params={"generation_id": gen_id})
        assert cancelled.status_code == 200
        body = cancelled.json()
        assert body["status"] == "error" and body["error"]["name"] == "Cancelled"
        assert body["meta"]["usage"]["credits_used"] == 0
        assert kinema.work() == []  # it never starts
        again = c.post(UNIFIED + "/cancel", params={"generation_id": gen_id})
        assert again.status_code == 409 and "already finished" in again.json()["message"]
        _, secret = kinema.store.create_key("other", None)
        foreign = c.post(
            UNIFIED + "/cancel",
            params={"generation_id": gen_id},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert foreign.status_code == 404
        missing = c.post(UNIFIED + "/cancel", params={"generation_id": "nope"})
        assert missing.status_code == 404


def test_cancel_a_running_job_stops_it_between_steps(tmp_path: Path, db: dict[str, str]) -> None:
    slow = SlowEngine(SlowOptions(steps=400, step_seconds=0.01))
    with in_process(tmp_path, [slow], **db) as kinema, kinema.client() as c:
        gen_id = c.post(UNIFIED, json=PROMPT).json()["id"]
        runner = threading.Thread(target=kinema.work)
        runner.start()
        while poll(c, gen_id)["status"] == "queued":
            time.sleep(0.02)
        asked = time.monotonic()
        assert c.post(UNIFIED + "/cancel", params={"generation_id": gen_id}).status_code == 200
        runner.join(10)
        stopped = time.monotonic() - asked
        body = poll(c, gen_id)
        assert body["status"] == "error" and body["error"]["name"] == "Cancelled"  # type: ignore[index]
        assert stopped < 2.0  # checked each 0.5 s, then one step
        assert kinema.store.list_keys()[0].credits is None


def test_start_and_run_deadlines(tmp_path: Path, db: dict[str, str]) -> None:
    slow = SlowEngine(SlowOptions(steps=400, step_seconds=0.01))
    with in_process(tmp_path, [slow], **db) as kinema, kinema.client() as c:
        late = c.post(UNIFIED, json=PROMPT, headers={"X-Kinema-Start-Timeout": "0.05"}).json()
        time.sleep(0.1)
        kinema.worker.recover()
        body = poll(c, late["id"])
        assert body["status"] == "error" and body["error"]["name"] == "Expired"  # type: ignore[index]
        assert body["meta"]["usage"]["credits_used"] == 0  # type: ignore[index]
        capped = c.post(UNIFIED, json=PROMPT, headers={"X-Kinema-Run-Timeout": "0.3"}).json()
        kinema.work()
        body = poll(c, capped["id"])
        assert body["status"] == "error" and body["error"]["name"] == "TimedOut"  # type: ignore[index]
        for header, value in (("X-Kinema-Run-Timeout", "soon"), ("X-Kinema-Start-Timeout", "-1")):
            refused = c.post(UNIFIED, json=PROMPT, headers={header: value})
            assert refused.status_code == 400 and refused.json()["details"][0]["field"] == header
        refused = c.post(UNIFIED, json=PROMPT, headers={"X-Kinema-Priority": "urgent"})
        assert refused.status_code == 400
        assert refused.json()["details"][0]["expected"] == "low | normal | high"


def test_idempotency_key_replays_and_conflicts(kinema: InProcess) -> None:
    with kinema.client() as c:
        headers = {"Idempotency-Key": "order-42"}
        first = c.post(UNIFIED, json=PROMPT, headers=headers)
        second = c.post(UNIFIED, json=PROMPT, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        assert second.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        different = c.post(UNIFIED, json={**PROMPT, "prompt": "Another"}, headers=headers)
        assert different.status_code == 409 and "order-42" in different.json()["message"]
        too_long = c.post(UNIFIED, json=PROMPT, headers={"Idempotency-Key": "x" * 256})
        assert too_long.status_code == 400
        assert len(c.get(UNIFIED + "/list").json()["data"]) == 1


def test_dry_run_quotes_without_creating(kinema: InProcess) -> None:
    with kinema.client() as c:
        quote = c.post(UNIFIED, json=PROMPT, params={"dry_run": "true"})
        assert quote.status_code == 200
        body = quote.json()
        assert body["status"] == "quote" and body["backend"] == "instant"
        assert body["meta"]["usage"]["credits_used"] > 0
        assert c.get(UNIFIED + "/list").json() == {"data": [], "next": None}
        bad = c.post(UNIFIED, json={"model": "video-01"}, params={"dry_run": "true"})
        assert bad.status_code == 400  # validated exactly like a submit


def test_list_pages_filters_and_delete(kinema: InProcess) -> None:
    with kinema.client() as c:
        ids = [c.post(UNIFIED, json=PROMPT).json()["id"] for _ in range(5)]
        kinema.work(limit=2)
        page = c.get(UNIFIED + "/list", params={"limit": 2}).json()
        assert [g["id"] for g in page["data"]] == [ids[4], ids[3]]
        rest = c.get(UNIFIED + "/list", params={"limit": 10, "after": page["next"]}).json()
        assert [g["id"] for g in rest["data"]] == [ids[2], ids[1], ids[0]]
        assert rest["next"] is None
        done = c.get(UNIFIED + "/list", params={"status": "completed"}).json()["data"]
        assert {g["id"] for g in done} == {ids[0], ids[1]}
        bad = c.get(UNIFIED + "/list", params={"after": "not-a-cursor"})
        assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "after"
        url = poll(c, ids[0])["video"]["url"]  # type: ignore[index]
        assert c.get(url).status_code == 200
        deleted = c.delete(UNIFIED, params={"generation_id": ids[0]})
        assert deleted.json() == {"id": ids[0], "deleted": True}
        assert c.get(UNIFIED, params={"generation_id": ids[0]}).status_code == 404
        assert c.get(url).status_code == 404  # the video went with it
        assert c.delete(UNIFIED, params={"generation_id": ids[0]}).status_code == 404


def test_two_api_processes_one_idempotency_key_one_job(
    tmp_path: Path, media: MediaServer, db: dict[str, str]
) -> None:
    """Two replicas sharing one store, the same Idempotency-Key sent to both at once."""
    first = KinemaServer(tmp_path, workers=0, **env_of(db))
    second = KinemaServer(tmp_path, workers=0, **env_of(db))
    first.start()
    second.start()
    try:
        body = {
            "model": "google/veo-3.1-i2v-fast", "image_url": f"{media.base}/landscape.png",
            "prompt": "the camera pushes in",
        }  # fmt: skip
        barrier = threading.Barrier(8)
        answers: list[httpx.Response] = []

        def submit(server: KinemaServer) -> None:
            barrier.wait()
            with server.client() as c:
                answers.append(c.post(UNIFIED, json=body, headers={"Idempotency-Key": "k-1"}))

        threads = [threading.Thread(target=submit, args=(s,)) for s in (first, second) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
        with first.client() as c:
            assert len(c.get(UNIFIED + "/list").json()["data"]) == 1
    finally:
        first.stop()
        second.stop()


def test_deleted_generation_is_gone_on_the_other_replica(
    tmp_path: Path, media: MediaServer, db: dict[str, str]
) -> None:
    first = KinemaServer(tmp_path, workers=1, **env_of(db))
    second = KinemaServer(tmp_path, workers=0, **env_of(db))
    first.start()
    second.start()
    try:
        body = {
            "model": "google/veo-3.1-i2v-fast", "image_url": f"{media.base}/landscape.png",
            "prompt": "the camera pushes in", "duration": 4, "resolution": "720p",
            "generate_audio": False,
        }  # fmt: skip
        with first.client() as a, second.client() as b:
            gen_id = a.post(UNIFIED, json=body).json()["id"]
            deadline = time.monotonic() + 120
            while poll(b, gen_id)["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            url = poll(b, gen_id)["video"]["url"]  # type: ignore[index]
            assert httpx.get(url).status_code == 200  # and b's finished-job view is warm
            assert a.delete(UNIFIED, params={"generation_id": gen_id}).status_code == 200
            assert b.get(UNIFIED, params={"generation_id": gen_id}).status_code == 404
            assert httpx.get(url).status_code == 404
    finally:
        first.stop()
        second.stop()


def test_cancel_frees_a_real_worker_within_a_second(
    server: KinemaServer, media: MediaServer
) -> None:
    body = {
        "model": "google/veo-3.1-i2v-fast", "image_url": f"{media.base}/wide.jpg",
        "prompt": "the camera pushes in", "duration": 8, "resolution": "1080p",
        "generate_audio": False,
    }  # fmt: skip
    with server.client() as c:
        gen_id = c.post(UNIFIED, json=body).json()["id"]
        while poll(c, gen_id)["status"] == "queued":
            time.sleep(0.05)
        asked = time.monotonic()
        assert c.post(UNIFIED + "/cancel", params={"generation_id": gen_id}).status_code == 200
        while poll(c, gen_id)["status"] == "generating":
            time.sleep(0.02)
        freed = time.monotonic() - asked
        assert poll(c, gen_id)["error"] == {
            "name": "Cancelled", "message": "The generation was cancelled by its owner.",
        }  # fmt: skip
        assert freed < 1.0
        # The worker takes the next job at once.
        short = {**body, "duration": 4, "resolution": "720p"}
        next_id = c.post(UNIFIED, json=short).json()["id"]
        deadline = time.monotonic() + 60
        while poll(c, next_id)["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_retention_deletes_old_generations_and_their_videos(
    tmp_path: Path, db: dict[str, str]
) -> None:
    # 1e-6 days is under a tenth of a second: everything finished before "now" is old.
    service = in_process(tmp_path, [InstantEngine()], retention_days=1e-6, **db)
    with service as kinema, kinema.client() as c:
        gen_id = c.post(UNIFIED, json=PROMPT).json()["id"]
        kinema.work()
        video = kinema.store.get_job(gen_id).output["key"]  # type: ignore[union-attr,index]
        assert kinema.storage.exists(video)
        time.sleep(0.2)
        assert kinema.worker.sweep_retention() == 1
        assert c.get(UNIFIED, params={"generation_id": gen_id}).status_code == 404
        assert not kinema.storage.exists(video)
