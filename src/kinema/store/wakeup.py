"""Waking idle workers when a job is queued.

A submit calls `announce(conn)` inside its transaction. Two signals follow, both only
once that transaction has committed, and polling every `KINEMA_POLL_INTERVAL` stays the
fallback for any that is lost (workers on other hosts, a full socket queue):

- PostgreSQL: the transaction runs `NOTIFY kinema_jobs`; each idle worker holds one
  LISTEN connection and returns from its wait as soon as a notification arrives.
- SQLite (a database file, so every process using it is on this machine): each idle
  worker binds a Unix datagram socket in a wake-up directory beside the database file
  (`<database>-wake/`, like SQLite's own `-wal`); when the submitting connection goes
  back to the pool after its commit, the submitting process sends one empty datagram to
  every socket there. A socket whose worker died refuses it and is removed. Embedded
  workers (`kinema serve`) and `kinema worker` processes sharing the database file are
  woken alike.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text

CHANNEL = "kinema_jobs"
# Set on the connection's pool record by `announce`, read when the connection returns to
# the pool: that is after its transaction committed (a rollback clears it first).
_PENDING = "kinema_wake_pending"
_SOCKET_SUFFIX = ".sock"
# sockaddr_un holds 108 bytes with the trailing NUL; names are `w<pid>-<6 hex>.sock`.
_MAX_SOCKET_PATH = 107
_NAME_ROOM = 24
log = logging.getLogger("kinema.store")


def announce(conn: Connection) -> None:
    """Signal a new job, delivered when `conn`'s transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))
    else:
        conn.info[_PENDING] = True


def wake_directory(engine: Engine) -> Path | None:
    """Where the workers of this SQLite database file bind their wake-up sockets (None
    for PostgreSQL and in-memory databases). Every process opening the same file derives
    the same directory."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    beside = path.with_name(path.name + "-wake")
    if len(os.fsencode(beside)) + 1 + _NAME_ROOM <= _MAX_SOCKET_PATH:
        return beside
    # A socket path must fit sockaddr_un: for a deeply nested data dir, a private
    # directory in /tmp named after the database instead.
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return Path("/tmp") / f"kinema-wake-{os.getuid()}-{digest}"


def _usable(directory: Path) -> bool:
    """Create `directory` (owner-only); refuse one that someone else owns."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory.stat().st_uid == os.getuid()
    except OSError:
        return False


def wake_local(directory: Path, sender: socket.socket) -> int:
    """One datagram to every worker socket in `directory`; returns how many took it.
    Never raises: a wake-up that fails only means the worker finds the job by polling."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    woken = 0
    for name in names:
        if not name.endswith(_SOCKET_SUFFIX):
            continue
        path = os.path.join(directory, name)
        try:
            sender.sendto(b"\1", path)
            woken += 1
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody bound to it: its worker died without cleaning up.
            with contextlib.suppress(OSError):
                os.unlink(path)
        except OSError as exc:
            # EAGAIN: its queue is full, so it has a wake-up pending already. Anything
            # else (permissions, a non-socket file) leaves that worker to its polling.
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                log.debug("wake-up of %s failed: %s", path, exc)
    return woken


class _Inbox:
    """An idle worker's wake-up socket, bound for the worker's lifetime so a datagram
    sent between a claim that found nothing and the next wait is kept, not missed."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"w{os.getpid()}-{secrets.token_hex(3)}{_SOCKET_SUFFIX}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(str(self.path))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        # One wake-up is enough for any number of queued jobs: the worker claims until
        # the queue is empty before it waits again.
        while True:
            try:
                self.sock.recv(16)
            except (BlockingIOError, InterruptedError):
                return True

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class Wakeup:
    """Both ends of the wake-up for one store: `wait` for a worker, the sending for any
    process that submits (hooked on the engine's pool, so every `announce` is covered).
    `enabled` (KINEMA_JOB_WAKEUP) governs waiting only: without it a worker polls."""

    def __init__(self, engine: Engine, enabled: bool = True) -> None:
        self.engine = engine
        self.listens = enabled and engine.dialect.name == "postgresql"
        self.directory = wake_directory(engine)
        self.local = enabled and self.directory is not None
        self._listener: Any = None
        self._inbox: _Inbox | None = None
        self._sender: socket.socket | None = None
        self._lock = threading.Lock()
        self._sender_lock = threading.Lock()
        self._closed = False
        if self.directory is not None:
            event.listen(engine, "rollback", self._rolled_back)
            event.listen(engine.pool, "checkin", self._checked_in)

    # ---- sending -----------------------------------------------------------------------
    @staticmethod
    def _rolled_back(conn: Connection) -> None:
        conn.info.pop(_PENDING, None)

    def _checked_in(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_PENDING, False):
            self.wake_workers()

    def wake_workers(self) -> int:
        """Wake every idle worker on this machine sharing the database file."""
        if self.directory is None or self._closed:
            return 0
        with self._sender_lock:
            if self._sender is None:  # made on the first submit: workers never send
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            return wake_local(self.directory, self._sender)

    # ---- waiting -----------------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` s; True if woken by a new job, False at the timeout."""
        if self.local:
            return self._wait_local(timeout)
        if not self.listens:
            time.sleep(timeout)
            return False
        with self._lock:
            try:
                if self._listener is None:
                    self._listener = self._connect()
                    # A job queued before the LISTEN sent no notification to this
                    # worker: look again at once rather than after a whole wait.
                    return True
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            except Exception:
                # A dropped LISTEN connection: fall back to polling and reconnect later.
                log.warning("job wake-up connection failed; polling instead", exc_info=True)
                self.close()
                time.sleep(timeout)
                return False

    def _wait_local(self, timeout: float) -> bool:
        with self._lock:
            if self._inbox is None:
                assert self.directory is not None
                if not _usable(self.directory):
                    log.warning("wake-up directory %s is not usable; polling", self.directory)
                    self.local = False
                    time.sleep(timeout)
                    return False
                try:
                    self._inbox = _Inbox(self.directory)
                except OSError:
                    log.warning("cannot bind a wake-up socket; polling", exc_info=True)
                    self.local = False
                    time.sleep(timeout)
                    return False
                # A job queued before the socket existed sent it nothing: look again
                # at once rather than after a whole wait.
                return True
            return self._inbox.wait(timeout)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            if self._inbox is not None:
                self._inbox.close()
        self._inbox = None
        with self._sender_lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
