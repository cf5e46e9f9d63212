"""Idle workers are woken when a job is queued, not left to their next poll.

On SQLite each idle worker binds a Unix datagram socket beside the database file and a
submit sends to every one after its commit (kinema/store/wakeup.py). These tests prove
the path without timing asserts: the workers poll only every 60 s, so a job that starts
within the tests' generous timeouts was started by the wake-up."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from kinema.errors import CreditsExhausted
from kinema.store.base import NewJob
from kinema.store.sql import SqlStore
from kinema.store.wakeup import announce, wake_directory
from tests.support import KinemaServer, MediaServer, make_image, wait_for

UNIFIED = "/v2/video/generations"
NEVER = 60.0  # a poll interval no test waits out
TIMEOUT = 20.0  # for a wake-up that arrives in milliseconds


def _job(key_id: str, price: int = 0) -> NewJob:
    return NewJob(
        key_id=key_id, route="local", model="m", capability="motion", params={},
        price=price, max_attempts=1,
    )  # fmt: skip


def _sockets(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".sock"))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    """An API's store and a worker's store on the same SQLite file."""
    url = f"sqlite:///{tmp_path / 'kinema.db'}"
    api, worker = SqlStore(url), SqlStore(url)
    yield api, worker
    worker.close()
    api.close()


def test_a_commit_wakes_a_waiting_worker_and_the_job_is_visible(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    api, worker = stores
    key, _ = api.create_key("k", None)
    assert worker.wait_for_work(NEVER) is True  # binds its socket; looks again at once
    directory = worker.wakeup.directory
    assert directory is not None and len(_sockets(directory)) == 1
    outcome: dict[str, Any] = {}

    def idle_worker() -> None:
        outcome["woken"] = worker.wait_for_work(TIMEOUT)
        # The datagram goes out after the commit, so the job is already there to claim.
        outcome["claimed"] = worker.claim("w1", ["motion"], 30)

    thread = threading.Thread(target=idle_worker)
    thread.start()
    job = api.create_job(_job(key.id))
    thread.join(timeout=20)
    assert not thread.is_alive(), "the worker was not woken"
    assert outcome["woken"] is True
    assert outcome["claimed"] is not None and outcome["claimed"].id == job.id


def test_a_rolled_back_submit_wakes_nobody(stores: tuple[SqlStore, SqlStore]) -> None:
    api, worker = stores
    poor, _ = api.create_key("poor", 0)
    worker.wait_for_work(0)  # bind
    with pytest.raises(CreditsExhausted):
        api.create_job(_job(poor.id, price=10))
    assert worker.wait_for_work(0) is False
    # A transaction that announced a job and then rolled back (an idempotency race).
    with pytest.raises(RuntimeError), api.engine.begin() as conn:
        announce(conn)
        raise RuntimeError("rolled back")
    assert worker.wait_for_work(0) is False
    with api.engine.begin() as conn:  # the same, committed
        announce(conn)
    assert worker.wait_for_work(0) is True


def test_dead_workers_sockets_and_strangers_do_not_break_a_submit(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    api, worker = stores
    key, _ = api.create_key("k", None)
    worker.wait_for_work(0)
    directory = worker.wakeup.directory
    assert directory is not None
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "w999999-dead00.sock"))
    dead.close()  # its file stays, as after a SIGKILL
    (directory / "notes.txt").write_text("not a socket")
    (directory / "wfile-000000.sock").write_text("a file named like a socket")
    assert api.create_job(_job(key.id)).status == "queued"
    assert worker.wait_for_work(TIMEOUT) is True
    remaining = _sockets(directory)
    assert "w999999-dead00.sock" not in remaining  # refused, so removed
    assert worker.wakeup._inbox is not None
    assert worker.wakeup._inbox.path.name in remaining
    assert (directory / "notes.txt").exists()


def test_without_job_wakeup_a_worker_binds_nothing(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'kinema.db'}", wakeup=False)
    try:
        assert store.wait_for_work(0.01) is False
        directory = store.wakeup.directory
        assert directory is not None
        assert not directory.exists() or _sockets(directory) == []
    finally:
        store.close()


def test_a_deep_data_dir_gets_a_short_socket_directory(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["nested-directory"] * 6)
    deep.mkdir(parents=True)
    api = SqlStore(f"sqlite:///{deep / 'kinema.db'}")
    worker = SqlStore(f"sqlite:///{deep / 'kinema.db'}")
    try:
        directory = worker.wakeup.directory
        assert directory is not None and directory == wake_directory(api.engine)
        assert len(os.fsencode(directory)) < 80  # room for the socket name in 107 bytes
        key, _ = api.create_key("k", None)
        worker.wait_for_work(0)
        api.create_job(_job(key.id))
        assert worker.wait_for_work(TIMEOUT) is True
    finally:
        worker.close()
        api.close()
    assert _sockets(directory) == []  # a closed worker removes its socket


def test_kinema_serve_starts_jobs_without_polling(tmp_path: Path) -> None:
    """A real `kinema serve` whose worker polls once a minute runs three jobs in a row,
    each submitted while the worker idles; after a SIGKILL its socket is left behind, and
    the next server's submit clears it."""
    media = MediaServer(tmp_path / "media")
    image = media.add("in.png", make_image(640, 360))
    body = {"model": "pixverse/v5/image-to-video", "prompt": "zoom in", "image_url": image,
            "resolution": "360p", "duration": 5}  # fmt: skip
    data = tmp_path / "data"
    env = {"KINEMA_POLL_INTERVAL": str(NEVER), "KINEMA_ENGINES": "motion"}
    server = KinemaServer(data, workers=1, **env).start()
    # `<data>/kinema.db-wake`, or its /tmp stand-in if the test's path is long.
    wake = wake_directory(create_engine(f"sqlite:///{(data / 'kinema.db').resolve()}"))
    assert wake is not None
    try:
        deadline = time.monotonic() + 60
        while not (wake.exists() and _sockets(wake)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sockets(wake), server.log()
        with server.client() as client:
            for _ in range(3):
                time.sleep(0.3)  # the worker is idle in its 60 s wait
                created = client.post(UNIFIED, json=body)
                assert created.status_code == 201, created.text
                done = wait_for(client, created.json()["id"], timeout=20)
                assert done["status"] == "completed", done
    finally:
        server.kill_all()  # SIGKILL: the worker cannot remove its socket
        media.close()
    stale = _sockets(wake)
    assert len(stale) == 1
    # The next server has no workers: its submit meets only the dead worker's socket.
    server = KinemaServer(data, workers=0, **env).start()
    try:
        with server.client() as client:
            created = client.post(UNIFIED, json={**body, "image_url": "http://127.0.0.1:9/x.png"})
            assert created.status_code == 201, created.text
        assert _sockets(wake) == []
    finally:
        server.stop(timeout=30)
