"""Tables of the job store (SQLAlchemy Core). Alembic migrations create them; this module
is the shape the code queries against. Times are UNIX seconds (float) so SQLite and
PostgreSQL compare them identically."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
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
    Column("last_claimed_at", Float, nullable=True),  # fairness: least recently served first
    Column("webhook_secret", String(80), nullable=True),  # whsec_…, signs per-request URLs
    Column("admin", Boolean, nullable=False, server_default=false()),  # operator key
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
    Column("priority", Integer, nullable=False, server_default="1"),  # 0 low, 1 normal, 2 high
    Column("start_deadline", Float, nullable=True),  # not started by then -> Expired
    Column("run_timeout", Float, nullable=True),  # seconds of running before TimedOut
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("webhook_url", Text, nullable=True),  # per-request webhook (`webhook_url=`)
    Column("backend", String(64), nullable=True),  # the engine (or upstream) that ran it
    Column("upstream", JSON, nullable=True),  # provider job id + phase (durable waits)
    # A dialect's own data about the generation (OpenAI: size/seconds asked for, the model
    # alias, the video it remixes or extends; the worker stitches extensions from it).
    Column("extras", JSON, nullable=True),
)

Index("ix_jobs_status_seq", jobs.c.status, jobs.c.seq)
Index("ix_jobs_key_seq", jobs.c.key_id, jobs.c.seq)
Index("ix_jobs_finished", jobs.c.finished_at)
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

# Idempotency-Key -> the generation it created, per API key (24 h; the request's hash
# tells a replay from a conflicting reuse).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Webhooks: per-key endpoints (own secrets), a durable outbox of deliveries (one
# `webhook_id` per event, the same on every retry) and each delivery attempt.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", String(80), nullable=False),
    Column("events", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_webhook_endpoints_key", webhook_endpoints.c.key_id)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", String(64), nullable=False, unique=True),
    Column("job_id", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("endpoint_id", String(32), nullable=True),  # None: the job's own webhook_url
    Column("url", Text, nullable=False),
    Column("event", String(40), nullable=False),
    Column("payload", JSON, nullable=True),  # rendered at the first attempt, then fixed
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=True),  # also the claim's lease while sending
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at
)
Index("ix_webhook_deliveries_job", webhook_deliveries.c.job_id)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        Integer,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id)

# What operators did through the admin API (`/v2/admin/...`): one row per action, by the
# admin key that did it; secrets are never recorded.
admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(32), nullable=False),  # the admin key's id
    Column("action", String(40), nullable=False),  # key.create, key.revoke, key.credit
    Column("target", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
)
Index("ix_admin_audit_at", admin_audit.c.at)
