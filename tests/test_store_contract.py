"""The job store contract: every backend (SQLite file, PostgreSQL) passes the same tests.
PostgreSQL runs on 127.0.0.1:5432 on every dev and CI machine (`.ci/run` starts it)."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kinema.errors import StoreUnavailable
from kinema.jobs.model import Completed, Failed, Status, VideoOutput
from kinema.store import (
    COMPLETED,
    ERROR,
    GENERATING,
    QUEUED,
    CreditsExhausted,
    NewJob,
    open_store,
)
from kinema.store.sql import SqlStore

PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
I2V = "image-to-video"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'kinema.db'}")
        yield s
        s.close()
        return
    # A private schema per test keeps runs independent on the shared `test` database.
    schema = "kinema_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    s = open_store(f"{PG_URL}?options=-csearch_path%3D{schema}")
    yield s
    s.close()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def video(name: str = "x") -> VideoOutput:
    return VideoOutput(name, "video/mp4", f"{name}.mp4", 1000, 5.0, 1280, 720, False)


def done(credits: int, name: str = "x") -> Completed:
    return Completed(video(name), credits)


def job(key_id: str, price: int = 100, capability: str = I2V, attempts: int = 3) -> NewJob:
    return NewJob(key_id, "unified", "video-01", capability, {"prompt": "p"}, price, attempts)


def test_keys(store: SqlStore) -> None:
    key, secret = store.create_key("alice", 1000)
    assert secret.startswith("kn-") and key.prefix == secret[:10]
    assert store.authenticate(secret) == key
    assert store.authenticate(secret + "x") is None
    assert [k.id for k in store.list_keys()] == [key.id]
    topped = store.add_credits(key.prefix, 500)
    assert topped is not None and topped.credits == 1500
    assert store.revoke_key(key.id) is not None
    assert store.authenticate(secret) is None
    assert store.revoke_key(key.id) is None  # already revoked
    again = store.ensure_key(secret, "re-registered")
    assert again.id == key.id and store.authenticate(secret) is not None


def test_jobs_are_private_to_their_key(store: SqlStore) -> None:
    a, _ = store.create_key("a", None)
    b, _ = store.create_key("b", None)
    made = store.create_job(job(a.id))
    assert made.status == QUEUED and made.progress == 0 and made.params == {"prompt": "p"}
    assert store.get_job(made.id, a.id) == made
    assert store.get_job(made.id, b.id) is None
    assert store.get_job("missing") is None


def test_credits_cover_pending_jobs(store: SqlStore) -> None:
    key, _ = store.create_key("k", 250)
    store.create_job(job(key.id, 100))
    store.create_job(job(key.id, 100))
    with pytest.raises(CreditsExhausted) as exc:
        store.create_job(job(key.id, 100))
    assert exc.value.available == 50
    assert store.pending_count(key.id) == 2


def test_claim_is_fifo_filtered_and_exclusive(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    first = store.create_job(job(key.id))
    store.create_job(job(key.id, capability="talking-head"))
    third = store.create_job(job(key.id))
    assert store.queue_position(third) == 2
    claimed = store.claim("w1", [I2V], 30)
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == GENERATING and claimed.attempts == 1
    assert store.queue_position(claimed) == 0
    assert store.queue_position(store.get_job(third.id)) == 1  # type: ignore[arg-type]
    nxt = store.claim("w2", [I2V], 30)
    assert nxt is not None and nxt.id == third.id
    assert store.claim("w3", [I2V], 30) is None


def test_concurrent_claims_never_share_a_job(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    ids = {store.create_job(job(key.id)).id for _ in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            got = store.claim(name, [I2V], 30)
            if got is None:
                return
            with lock:
                claimed.append(got.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # each exactly once


def test_only_the_owner_finishes_and_credits_are_charged_once(store: SqlStore) -> None:
    key, _ = store.create_key("k", 1000)
    made = store.create_job(job(key.id, 300))
    store.claim("w1", [I2V], 30)
    assert store.heartbeat(made.id, "w1", 30, 42)
    assert store.get_job(made.id).progress == 42  # type: ignore[union-attr]
    assert not store.heartbeat(made.id, "intruder", 30, 99)
    assert not store.finish(made.id, "intruder", done(250))
    assert store.finish(made.id, "w1", done(250))
    assert not store.finish(made.id, "w1", done(250))
    finished = store.get_job(made.id)
    assert finished is not None and finished.status == COMPLETED and finished.credits_used == 250
    assert finished.output == video().as_dict() and finished.progress == 100
    assert finished.status.is_terminal
    assert store.list_keys()[0].credits == 750


def test_fail_and_release(store: SqlStore) -> None:
    key, _ = store.create_key("k", 1000)
    a = store.create_job(job(key.id))
    b = store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    assert store.finish(a.id, "w", Failed("InvalidInput", "image_url: bad"))
    failed = store.get_job(a.id)
    assert failed is not None and failed.status == ERROR and failed.error_name == "InvalidInput"
    assert failed.credits_used == 0 and store.list_keys()[0].credits == 1000
    store.claim("w", [I2V], 30)
    assert store.release(b.id, "w")
    back = store.get_job(b.id)
    assert back is not None and back.status == QUEUED and back.attempts == 0


def test_expired_leases_are_requeued_then_failed(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    made = store.create_job(job(key.id, attempts=2))
    for attempt in (1, 2):
        claimed = store.claim(f"w{attempt}", [I2V], 0.05)
        assert claimed is not None and claimed.attempts == attempt
        assert store.recover_expired().requeued == []  # lease still valid
        time.sleep(0.1)
        recovered = store.recover_expired()
        if attempt == 1:
            assert recovered.requeued == [made.id]
            assert not store.heartbeat(made.id, "w1", 30, 5)  # the lost worker is told
        else:
            assert recovered.failed == [made.id]
    final = store.get_job(made.id)
    assert final is not None and final.status == ERROR and final.error_name == "WorkerLost"


def test_migrations_are_idempotent(store: SqlStore) -> None:
    again = open_store(store.url)
    assert again.list_keys() == store.list_keys()
    again.close()


def test_worker_presence_and_aggregates(store: SqlStore) -> None:
    from kinema.store import WorkerInfo

    now = time.time()
    info = WorkerInfo("w1", "host-a", 123, [I2V], now, now, None, 0)
    store.worker_seen(info)
    store.worker_seen(WorkerInfo("w1", "host-a", 123, [I2V], now, now + 1, "job-x", 3))
    store.worker_seen(WorkerInfo("old", "host-b", 9, [I2V], now - 100, now - 100, None, 0))
    [live] = store.workers(seen_within=30)
    assert (live.id, live.current_job, live.jobs_done) == ("w1", "job-x", 3)
    store.worker_gone("w1")
    assert store.workers(seen_within=30) == []

    key, _ = store.create_key("k", None)
    a = store.create_job(job(key.id))
    b = store.create_job(job(key.id))
    store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    store.finish(a.id, "w", done(1))
    store.claim("w", [I2V], 30)
    store.finish(b.id, "w", Failed("InvalidInput", "bad"))
    counts = {(m, s): n for m, s, n in store.job_counts()}
    assert counts == {("video-01", COMPLETED): 1, ("video-01", ERROR): 1, ("video-01", QUEUED): 1}
    assert store.failure_counts() == [("InvalidInput", 1)]
    [(model, waited, ran)] = store.timings(since=now - 10)
    assert model == "video-01" and waited >= 0 and ran >= 0


def test_wait_for_work(store: SqlStore) -> None:
    """A submit wakes a waiting worker: LISTEN/NOTIFY on PostgreSQL, a datagram to the
    worker's socket beside the database file on SQLite (store/wakeup.py)."""
    key, _ = store.create_key("k", None)
    store.wait_for_work(0.01)  # opens the LISTEN connection / binds the wake-up socket
    assert store.wait_for_work(0.05) is False  # nothing queued: the timeout ends it
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(store.wait_for_work(10)))
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    store.create_job(job(key.id))
    waiter.join(5)
    assert result == [True]
    assert time.monotonic() - started < 1.0


def test_events_log_status_changes_and_coarse_progress(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    made = store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    for progress in (1, 3, 7, 9, 12, 12, 55):
        assert store.heartbeat(made.id, "w", 30, progress)
    assert store.finish(made.id, "w", done(1))
    events = store.events(made.id)
    assert [(e.kind, e.status, e.progress) for e in events] == [
        ("status", Status.QUEUED, 0),
        ("status", Status.GENERATING, 0),
        ("progress", Status.GENERATING, 7),
        ("progress", Status.GENERATING, 12),
        ("progress", Status.GENERATING, 55),
        ("status", Status.COMPLETED, 100),
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert store.events(made.id, after=ids[2]) == events[3:]
    other = store.create_job(job(key.id))
    assert [e.job_id for e in store.events(other.id)] == [other.id]


def test_events_of_recovery_release_and_failure(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    a = store.create_job(job(key.id, attempts=1))
    store.claim("w", [I2V], 0.01)
    time.sleep(0.05)
    assert store.recover_expired().failed == [a.id]
    assert [e.status for e in store.events(a.id)][-1] == Status.ERROR
    b = store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    assert store.release(b.id, "w")
    assert [e.status for e in store.events(b.id)] == [
        Status.QUEUED, Status.GENERATING, Status.QUEUED,
    ]  # fmt: skip


def test_events_are_pruned_with_their_job(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    made = store.create_job(job(key.id))
    assert store.events(made.id)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": made.id})
    assert store.events(made.id) == []


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://postgres@127.0.0.1:1/test", "sqlite:////nonexistent/dir/k.db"]
)
def test_an_unreachable_database_is_store_unavailable(url: str) -> None:
    unreachable = open_store(url, run_migrations=False, wakeup=False)
    with pytest.raises(StoreUnavailable):
        unreachable.list_keys()
    with pytest.raises(StoreUnavailable):
        unreachable.get_status("x", "k")
    unreachable.close()


# ---- the lifecycle --------------------------------------------------------------------
def test_idempotent_create_replays_and_refuses_a_different_request(store: SqlStore) -> None:
    from kinema.store import Idempotency, IdempotencyConflict

    key, _ = store.create_key("k", None)
    other, _ = store.create_key("o", None)
    first, replayed = store.create_job_once(job(key.id), Idempotency("abc", "h1"))
    assert not replayed
    again, replayed = store.create_job_once(job(key.id), Idempotency("abc", "h1"))
    assert replayed and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        store.create_job_once(job(key.id), Idempotency("abc", "h2"))
    mine, replayed = store.create_job_once(job(other.id), Idempotency("abc", "h2"))
    assert not replayed and mine.id != first.id  # scoped per API key
    assert store.pending_count(key.id) == 1


def test_concurrent_idempotent_creates_make_one_job(store: SqlStore) -> None:
    from kinema.store import Idempotency

    key, _ = store.create_key("k", None)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        barrier.wait()
        made, _ = store.create_job_once(job(key.id), Idempotency("same", "h"))
        results.append(made.id)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and store.pending_count(key.id) == 1


def test_cancel_queued_running_finished_and_others(store: SqlStore) -> None:
    from kinema.store import CancelResult

    key, _ = store.create_key("k", 1000)
    other, _ = store.create_key("o", None)
    queued = store.create_job(job(key.id))
    assert store.cancel(queued.id, other.id) == CancelResult.NOT_FOUND
    assert store.cancel(queued.id, key.id) == CancelResult.CANCELLED
    cancelled = store.get_job(queued.id)
    assert cancelled is not None and cancelled.status == ERROR
    assert cancelled.error_name == "Cancelled" and cancelled.credits_used == 0
    assert store.claim("w", [I2V], 30) is None  # a cancelled job never starts
    running = store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    assert not store.cancel_requested(running.id)
    assert store.cancel(running.id, key.id) == CancelResult.STOPPING
    assert store.cancel_requested(running.id)
    assert store.finish(running.id, "w", Failed("Cancelled", "stopped"))
    assert store.cancel(running.id, key.id) == CancelResult.FINISHED
    assert store.list_keys()[0].credits == 1000
    assert [e.status for e in store.events(queued.id)] == [Status.QUEUED, Status.ERROR]


def test_start_deadlines_expire_queued_jobs(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    late = store.create_job(
        NewJob(key.id, "unified", "video-01", I2V, {}, 1, 3, start_deadline=time.time() - 1)
    )
    fresh = store.create_job(
        NewJob(key.id, "unified", "video-01", I2V, {}, 1, 3, start_deadline=time.time() + 60)
    )
    claimed = store.claim("w", [I2V], 30)
    assert claimed is not None and claimed.id == fresh.id  # the late one is never started
    assert store.expire_overdue() == [late.id]
    expired = store.get_job(late.id)
    assert expired is not None and expired.error_name == "Expired" and expired.credits_used == 0


def test_claims_alternate_between_keys_and_follow_priority(store: SqlStore) -> None:
    busy, _ = store.create_key("busy", None)
    quiet, _ = store.create_key("quiet", None)
    for _ in range(5):
        store.create_job(job(busy.id))
    high = store.create_job(NewJob(busy.id, "unified", "video-01", I2V, {}, 1, 3, priority=2))
    lone = store.create_job(job(quiet.id))
    order = []
    while (claimed := store.claim("w", [I2V], 30)) is not None:
        order.append(claimed)
    assert order[0].id == high.id  # the busy key's own high-priority job first...
    assert order[1].id == lone.id  # ...then the other key gets its turn at once
    assert len(order) == 7


def test_list_pages_newest_first_and_delete(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    other, _ = store.create_key("o", None)
    made = [store.create_job(job(key.id)) for _ in range(5)]
    store.create_job(job(other.id))
    first = store.list_jobs(key.id, limit=2)
    assert [j.id for j in first] == [made[4].id, made[3].id]
    second = store.list_jobs(key.id, limit=2, before_seq=first[-1].seq)
    assert [j.id for j in second] == [made[2].id, made[1].id]
    assert second[0].queue_position == 2  # two queued jobs ahead of it
    assert store.list_jobs(key.id, limit=10, status=Status.COMPLETED) == []
    assert store.delete_job(made[0].id, other.id) is None  # not the other key's to delete
    removed = store.delete_job(made[0].id, key.id)
    assert removed is not None and removed.id == made[0].id
    assert store.get_job(made[0].id) is None and store.events(made[0].id) == []
    assert store.cancel_requested(made[0].id)  # a deleted job's worker stops
    assert [j.id for j in store.list_jobs(key.id, limit=10)][-1] == made[1].id


def test_finished_before_finds_old_jobs(store: SqlStore) -> None:
    key, _ = store.create_key("k", None)
    made = store.create_job(job(key.id))
    store.claim("w", [I2V], 30)
    store.finish(made.id, "w", done(1))
    assert store.finished_before(time.time() + 1, 10) == [made.id]
    assert store.finished_before(time.time() - 60, 10) == []


def test_batched_lease_renewal_and_cancel_checks(store: SqlStore) -> None:
    """The upstream loop's heartbeat and cancel check: one statement for all its jobs."""
    from kinema.store import CancelResult

    key, _ = store.create_key("k", None)
    ids = [store.create_job(job(key.id)).id for _ in range(4)]
    mine = [store.claim("w1", [I2V], 5).id for _ in range(3)]  # type: ignore[union-attr]
    queued = (set(ids) - set(mine)).pop()
    before = {i: store.get_job(i).lease_expires_at for i in mine}  # type: ignore[union-attr]
    assert store.renew_leases([*mine, queued, "missing"], "w1", 300) == set(mine)
    for job_id in mine:
        assert store.get_job(job_id).lease_expires_at > before[job_id] + 200  # type: ignore[union-attr, operator]
    assert store.renew_leases(mine, "another-worker", 300) == set()
    assert store.renew_leases([], "w1", 300) == set()
    assert store.cancels_requested(mine) == set()
    assert store.cancel(mine[0], key.id) == CancelResult.STOPPING
    assert store.delete_job(mine[1], key.id) is not None
    assert store.cancels_requested([*mine, "gone"]) == {mine[0], mine[1], "gone"}
    assert store.cancels_requested([]) == set()
