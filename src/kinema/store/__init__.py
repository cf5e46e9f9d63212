"""The job store: one interface (`JobStore`), one SQLAlchemy implementation serving SQLite
and PostgreSQL (`SqlStore`). `open_store(settings)` picks by URL."""

from __future__ import annotations

from kinema.store.base import (
    COMPLETED,
    ERROR,
    GENERATING,
    PENDING,
    QUEUED,
    ApiKey,
    CreditsExhausted,
    Job,
    JobStatus,
    JobStore,
    NewJob,
    Recovered,
    WorkerInfo,
)
from kinema.store.sql import SqlStore

__all__ = [
    "COMPLETED", "ERROR", "GENERATING", "PENDING", "QUEUED", "ApiKey", "CreditsExhausted",
    "Job", "JobStatus", "JobStore", "NewJob", "Recovered", "SqlStore", "WorkerInfo", "open_store",
]  # fmt: skip


def open_store(url: str, *, run_migrations: bool = True, wakeup: bool = True) -> SqlStore:
    return SqlStore(url, run_migrations=run_migrations, wakeup=wakeup)
