"""Tables of the job store (SQLAlchemy Core). Alembic migrations create them; this module
is the shape the code queries against. Times are UNIX seconds (float) so SQLite and
PostgreSQL compare them identically."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex of the secret
    Column("prefix", String(16), nullable=False),  # first characters, for `keys list`
    Column("credits", BigInteger, nullable=True),  # NULL = unlimited
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

jobs = Table(
    "jobs",
    metadata,
    # `seq` orders the queue; `id` is the opaque public generation id.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("route", String(32), nullable=False),
    Column("model", String(100), nullable=False),
    Column("capability", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # queued|generating|completed|error
    Column("progress", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("price", BigInteger, nullable=False),  # estimate reserved at submit
    Column("credits_used", BigInteger, nullable=True),  # charged at completion
    Column("output", JSON, nullable=True),  # storage key + video metadata
    Column("error_name", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
)

Index("ix_jobs_status_seq", jobs.c.status, jobs.c.seq)
Index("ix_jobs_key_status", jobs.c.key_id, jobs.c.status)
Index("ix_jobs_lease", jobs.c.status, jobs.c.lease_expires_at)

workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("current_job", String(64), nullable=True),
    Column("jobs_done", Integer, nullable=False, default=0),
)

Index("ix_workers_last_seen", workers.c.last_seen)

# A job's event log (status changes, coarse progress): the source for live streams,
# webhooks and audit. `id` is monotonic; rows go with their job (ON DELETE CASCADE).
job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # status | progress
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

Index("ix_job_events_job_id", job_events.c.job_id, job_events.c.id)
