"""The job lifecycle: cancel, deadlines, priority and fairness, idempotency keys, webhooks
(per-key signing secret, endpoints, a durable delivery outbox and its attempts).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="1"))
        jobs.add_column(sa.Column("start_deadline", sa.Float, nullable=True))
        jobs.add_column(sa.Column("run_timeout", sa.Float, nullable=True))
        jobs.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
        jobs.add_column(sa.Column("webhook_url", sa.Text, nullable=True))
        jobs.add_column(sa.Column("backend", sa.String(64), nullable=True))
    op.create_index("ix_jobs_key_seq", "jobs", ["key_id", "seq"])
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])
    with op.batch_alter_table("api_keys") as keys:
        keys.add_column(sa.Column("last_claimed_at", sa.Float, nullable=True))
        keys.add_column(sa.Column("webhook_secret", sa.String(80), nullable=True))
        keys.add_column(sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column(
            "job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.String(80), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_key", "webhook_endpoints", ["key_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(64), nullable=False, unique=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("endpoint_id", sa.String(32), nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_job", "webhook_deliveries", ["job_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_column("admin")
        keys.drop_column("webhook_secret")
        keys.drop_column("last_claimed_at")
    op.drop_index("ix_jobs_finished", "jobs")
    op.drop_index("ix_jobs_key_seq", "jobs")
    with op.batch_alter_table("jobs") as jobs:
        for column in (
            "backend", "webhook_url", "cancel_requested", "run_timeout", "start_deadline",
            "priority",
        ):  # fmt: skip
            jobs.drop_column(column)
