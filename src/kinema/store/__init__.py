"""The job store: the interface split by caller (`KeyStore`, `JobQueue`, `Telemetry`;
`JobStore` is all three) and one SQLAlchemy implementation serving SQLite and PostgreSQL
(`SqlStore`). The only package that sees SQL. `open_store(url)` picks by URL."""

from __future__ import annotations

from kinema.store.base import (
    COMPLETED,
    ERROR,
    GENERATING,
    PENDING,
    QUEUED,
    ApiKey,
    CancelResult,
    CreditsExhausted,
    Idempotency,
    IdempotencyConflict,
    Job,
    JobEvent,
    JobQueue,
    JobStatus,
    JobStore,
    KeyStore,
    NewJob,
    Recovered,
    Telemetry,
    WebhookStore,
    WorkerInfo,
)

__all__ = [
    "COMPLETED",
    "ERROR",
    "GENERATING",
    "PENDING",
    "QUEUED",
    "ApiKey",
    "CancelResult",
    "CreditsExhausted",
    "Idempotency",
    "IdempotencyConflict",
    "Job",
    "JobEvent",
    "JobQueue",
    "JobStatus",
    "JobStore",
    "KeyStore",
    "NewJob",
    "Recovered",
    "Telemetry",
    "WebhookStore",
    "WorkerInfo",
    "open_store",
]  # fmt: skip


def open_store(url: str, *, run_migrations: bool = True, wakeup: bool = True) -> JobStore:
    """The store for a database URL (SQLite or PostgreSQL), migrated to the newest schema."""
    from kinema.store.sql import SqlStore

    return SqlStore(url, run_migrations=run_migrations, wakeup=wakeup)
