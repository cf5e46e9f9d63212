"""Waking idle workers when a job is queued.

PostgreSQL: the submit transaction runs `NOTIFY kinema_jobs`; each idle worker holds one
LISTEN connection and returns from its wait as soon as a notification arrives, so pickup
does not wait for the next poll. SQLite has no such signal: the wait is a plain sleep of
`KINEMA_POLL_INTERVAL` (the database is local, so short polls are cheap)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, text

CHANNEL = "kinema_jobs"
log = logging.getLogger("kinema.store")


def announce(conn: Connection) -> None:
    """Signal a new job, delivered when `conn`'s transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class Wakeup:
    def __init__(self, engine: Engine, enabled: bool = True) -> None:
        self.engine = engine
        self.listens = enabled and engine.dialect.name == "postgresql"
        self._listener: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` s; True if woken by a new job (always False on SQLite)."""
        if not self.listens:
            time.sleep(timeout)
            return False
        with self._lock:
            try:
                if self._listener is None:
                    self._listener = self._connect()
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            except Exception:
                # A dropped LISTEN connection: fall back to polling and reconnect later.
                log.warning("job wake-up connection failed; polling instead", exc_info=True)
                self.close()
                time.sleep(timeout)
                return False

    def close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
