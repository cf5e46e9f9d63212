"""Webhook deliveries enter the durable outbox here, inside the transaction that changes
the job (so an event is never lost, nor announced without its change). Sending them is
`kinema.webhooks`' business."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from kinema.store.schema import jobs, webhook_deliveries, webhook_endpoints

COMPLETED_EVENT = "generation.completed"
FAILED_EVENT = "generation.failed"
CANCELLED_EVENT = "generation.cancelled"
STARTED_EVENT = "generation.started"
PROGRESS_EVENT = "generation.progress"
DEFAULT_EVENTS = (COMPLETED_EVENT, FAILED_EVENT, CANCELLED_EVENT)
ALL_EVENTS = (*DEFAULT_EVENTS, STARTED_EVENT, PROGRESS_EVENT)
PENDING = "pending"


def final_event(status: str, error_name: str | None) -> str:
    if status == "completed":
        return COMPLETED_EVENT
    return CANCELLED_EVENT if error_name == "Cancelled" else FAILED_EVENT


def new_webhook_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def enqueue(conn: Connection, job_ids: Iterable[str], event: str, now: float) -> None:
    """Queue `event` for each job: to its own `webhook_url` (the default events only) and
    to every endpoint of its key that subscribed to the event."""
    ids = list(job_ids)
    if not ids:
        return
    owners = conn.execute(
        select(jobs.c.id, jobs.c.key_id, jobs.c.webhook_url).where(jobs.c.id.in_(ids))
    ).all()
    keys = {owner.key_id for owner in owners}
    endpoints = conn.execute(
        select(webhook_endpoints).where(webhook_endpoints.c.key_id.in_(keys))
    ).mappings().all()  # fmt: skip
    rows = []
    for owner in owners:
        targets: list[tuple[str | None, str]] = []
        if owner.webhook_url and event in DEFAULT_EVENTS:
            targets.append((None, owner.webhook_url))
        targets += [
            (e["id"], e["url"]) for e in endpoints
            if e["key_id"] == owner.key_id and event in (e["events"] or DEFAULT_EVENTS)
        ]  # fmt: skip
        rows += [
            {"webhook_id": new_webhook_id(), "job_id": owner.id, "key_id": owner.key_id,
             "endpoint_id": endpoint_id, "url": url, "event": event, "payload": None,
             "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for endpoint_id, url in targets
        ]  # fmt: skip
    if rows:
        conn.execute(insert(webhook_deliveries), rows)


class SqlWebhooks:
    """The webhook side of the SQL store (endpoints, secrets, the outbox's claims and
    attempts). Mixed into `SqlStore`."""
