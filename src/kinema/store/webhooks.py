"""Webhook deliveries enter the durable outbox here, inside the transaction that changes
the job (so an event is never lost, nor announced without its change). Sending them is
`kinema.webhooks`' business."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    String,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from kinema.store.schema import (
    api_keys,
    jobs,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

COMPLETED_EVENT = "generation.completed"
FAILED_EVENT = "generation.failed"
CANCELLED_EVENT = "generation.cancelled"
STARTED_EVENT = "generation.started"
PROGRESS_EVENT = "generation.progress"
DEFAULT_EVENTS = (COMPLETED_EVENT, FAILED_EVENT, CANCELLED_EVENT)
ALL_EVENTS = (*DEFAULT_EVENTS, STARTED_EVENT, PROGRESS_EVENT)
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


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
             "endpoint_id": endpoint_id, "url": url, "event": event,
             "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for endpoint_id, url in targets
        ]  # fmt: skip
    if rows:
        # `payload` left out: SQL NULL until the first attempt renders it (a None value
        # would be stored as the JSON `null`).
        conn.execute(insert(webhook_deliveries), rows)


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True)
class WebhookEndpoint:
    """A key's default webhook destination, with its own signing secret."""

    id: str
    key_id: str
    url: str
    secret: str
    events: list[str]  # empty: the default events
    created_at: float


@dataclass(frozen=True)
class ClaimedWebhook:
    """One attempt at one delivery, claimed by one dispatcher (`attempt` is the claim:
    only the process holding it may record the outcome). `secret` signs it; None when
    the endpoint it was queued for has been removed since."""

    id: int
    webhook_id: str
    job_id: str
    key_id: str
    endpoint_id: str | None
    url: str
    event: str
    payload: dict[str, Any] | None
    attempt: int
    created_at: float
    secret: str | None


@dataclass(frozen=True)
class WebhookResult:
    """What one attempt came to. `next_attempt_at` None and not `delivered`: given up."""

    delivery_id: int
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    at: float
    delivered: bool
    next_attempt_at: float | None = None


@dataclass(frozen=True)
class WebhookAttempt:
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    at: float


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one destination, with its attempts so far (oldest first)."""

    webhook_id: str
    job_id: str
    endpoint_id: str | None
    url: str
    event: str
    status: str  # pending | delivered | failed
    attempts: list[WebhookAttempt]
    next_attempt_at: float | None
    created_at: float
    delivered_at: float | None


def _no_payload(column: Any) -> Any:
    """SQL NULL, or a JSON `null` written by an older enqueue."""
    return or_(column.is_(None), cast(column, String) == "null")


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"], key_id=row["key_id"], url=row["url"], secret=row["secret"],
        events=list(row["events"] or []), created_at=row["created_at"],
    )  # fmt: skip


class SqlWebhooks:
    """The webhook side of the SQL store (endpoints, secrets, the outbox's claims and
    attempts). Mixed into `SqlStore`.

    A delivery is claimed by one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
    … RETURNING that adds one to `attempts` and pushes `next_attempt_at` past the send's
    lease, so every attempt is sent by exactly one process; a process that dies holding
    it leaves the lease to expire and the next claim makes it the next attempt. The
    outcome is recorded only while `attempts` still equals the claimed number."""

    engine: Engine

    # ---- secrets and endpoints ---------------------------------------------------------
    def webhook_secret(self, key_id: str) -> str:
        with self.engine.begin() as conn:
            return self._key_secret(conn, key_id)

    def _key_secret(self, conn: Connection, key_id: str) -> str:
        # Made once, atomically: two processes asking at once both end with the winner's.
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.webhook_secret.is_(None))
            .values(webhook_secret=new_secret())
        )
        secret = conn.execute(
            select(api_keys.c.webhook_secret).where(api_keys.c.id == key_id)
        ).scalar()
        if secret is None:
            raise KeyError(key_id)
        return str(secret)

    def add_webhook_endpoint(self, key_id: str, url: str, events: list[str]) -> WebhookEndpoint:
        values = {
            "id": "whep_" + secrets.token_hex(8), "key_id": key_id, "url": url,
            "secret": new_secret(), "events": list(events), "created_at": time.time(),
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(insert(webhook_endpoints).values(**values))
        return _endpoint(values)

    def webhook_endpoints(self, key_id: str | None = None) -> list[WebhookEndpoint]:
        query = select(webhook_endpoints).order_by(
            webhook_endpoints.c.created_at, webhook_endpoints.c.id
        )
        if key_id is not None:
            query = query.where(webhook_endpoints.c.key_id == key_id)
        with self.engine.connect() as conn:
            return [_endpoint(row) for row in conn.execute(query).mappings()]

    def remove_webhook_endpoint(
        self, endpoint_id: str, key_id: str | None = None
    ) -> WebhookEndpoint | None:
        where: Any = webhook_endpoints.c.id == endpoint_id
        if key_id is not None:
            where = where & (webhook_endpoints.c.key_id == key_id)
        with self.engine.begin() as conn:
            row = conn.execute(
                delete(webhook_endpoints).where(where).returning(*webhook_endpoints.c)
            ).mappings().first()  # fmt: skip
        return _endpoint(row) if row is not None else None

    # ---- the outbox: dispatch side -----------------------------------------------------
    def claim_webhooks(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[ClaimedWebhook]:
        now = time.time() if now is None else now
        d = webhook_deliveries
        due = (d.c.status == PENDING) & (d.c.next_attempt_at <= now)
        with self.engine.connect() as conn:
            # A read first: an idle dispatcher polls often and must not take write locks.
            if conn.execute(select(d.c.id).where(due).limit(1)).first() is None:
                return []
        chosen = (
            select(d.c.id)
            .where(due)
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(d)
                .where(d.c.id.in_(chosen), due)
                .values(attempts=d.c.attempts + 1, next_attempt_at=now + lease_seconds)
                .returning(
                    d.c.id, d.c.webhook_id, d.c.job_id, d.c.key_id, d.c.endpoint_id, d.c.url,
                    d.c.event, d.c.payload, d.c.attempts, d.c.created_at,
                )
            ).mappings().all()  # fmt: skip
        if not rows:
            return []
        secrets_by_endpoint: dict[str, str] = {}
        secrets_by_key: dict[str, str] = {}
        endpoint_ids = {r["endpoint_id"] for r in rows if r["endpoint_id"] is not None}
        key_ids = {r["key_id"] for r in rows if r["endpoint_id"] is None}
        with self.engine.connect() as conn:
            if endpoint_ids:
                secrets_by_endpoint = dict(
                    conn.execute(
                        select(webhook_endpoints.c.id, webhook_endpoints.c.secret).where(
                            webhook_endpoints.c.id.in_(endpoint_ids)
                        )
                    ).all()
                )
            if key_ids:
                secrets_by_key = {
                    key_id: secret
                    for key_id, secret in conn.execute(
                        select(api_keys.c.id, api_keys.c.webhook_secret).where(
                            api_keys.c.id.in_(key_ids)
                        )
                    ).all()
                    if secret is not None
                }
        for key_id in key_ids - set(secrets_by_key):
            with suppress(KeyError):  # the key row is gone: nothing can sign
                secrets_by_key[key_id] = self.webhook_secret(key_id)
        claimed = []
        for r in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
            endpoint = r["endpoint_id"]
            secret = (
                secrets_by_endpoint.get(endpoint) if endpoint else secrets_by_key.get(r["key_id"])
            )
            claimed.append(
                ClaimedWebhook(
                    id=r["id"], webhook_id=r["webhook_id"], job_id=r["job_id"],
                    key_id=r["key_id"], endpoint_id=endpoint, url=r["url"], event=r["event"],
                    payload=r["payload"], attempt=r["attempts"], created_at=r["created_at"],
                    secret=secret,
                )
            )  # fmt: skip
        return claimed

    def set_webhook_payloads(self, payloads: dict[int, dict[str, Any]]) -> dict[int, Any]:
        """Store each delivery's rendered payload unless it already has one (rendered once,
        then fixed: every retry sends the same body). Returns the stored payloads."""
        if not payloads:
            return {}
        d = webhook_deliveries
        with self.engine.begin() as conn:
            conn.execute(
                update(d)
                .where(d.c.id == bindparam("b_id"), _no_payload(d.c.payload))
                .values(payload=bindparam("b_payload", type_=d.c.payload.type)),
                [{"b_id": key, "b_payload": value} for key, value in payloads.items()],
            )
            stored = conn.execute(
                select(d.c.id, d.c.payload).where(d.c.id.in_(list(payloads)))
            ).all()
            return {delivery_id: payload for delivery_id, payload in stored}

    def record_webhook_attempts(self, results: list[WebhookResult]) -> int:
        """Record each attempt and move its delivery on (delivered, the next retry, or
        given up), the latter only while the attempt is still the delivery's current
        claim. Returns how many deliveries moved on (as the driver counts them)."""
        if not results:
            return 0
        d = webhook_deliveries
        moves = []
        for r in results:
            status = DELIVERED if r.delivered else PENDING if r.next_attempt_at else FAILED
            moves.append({
                "b_id": r.delivery_id, "b_attempt": r.attempt, "b_status": status,
                "b_next": None if r.delivered else r.next_attempt_at,
                "b_delivered_at": r.at if r.delivered else None,
            })  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(
                insert(webhook_attempts),
                [
                    {"delivery_id": r.delivery_id, "attempt": r.attempt,
                     "status_code": r.status_code, "error": r.error,
                     "latency_ms": r.latency_ms, "at": r.at}
                    for r in results
                ],
            )  # fmt: skip
            moved = conn.execute(
                update(d)
                .where(
                    d.c.id == bindparam("b_id"), d.c.attempts == bindparam("b_attempt"),
                    d.c.status == PENDING,
                )
                .values(
                    status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
                    delivered_at=bindparam("b_delivered_at"),
                ),
                moves,
            )  # fmt: skip
        return max(0, int(moved.rowcount))

    # ---- the outbox: what its owner sees -----------------------------------------------
    def webhook_deliveries(self, job_id: str, key_id: str | None = None) -> list[WebhookDelivery]:
        d, a = webhook_deliveries, webhook_attempts
        where: Any = d.c.job_id == job_id
        if key_id is not None:
            where = where & (d.c.key_id == key_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(where).order_by(d.c.id)).mappings().all()
            tried: dict[int, list[WebhookAttempt]] = {row["id"]: [] for row in rows}
            if tried:
                for attempt in conn.execute(
                    select(a).where(a.c.delivery_id.in_(list(tried))).order_by(a.c.id)
                ).mappings():
                    tried[attempt["delivery_id"]].append(
                        WebhookAttempt(
                            attempt=attempt["attempt"], status_code=attempt["status_code"],
                            error=attempt["error"], latency_ms=attempt["latency_ms"],
                            at=attempt["at"],
                        )
                    )  # fmt: skip
        return [
            WebhookDelivery(
                webhook_id=row["webhook_id"], job_id=row["job_id"],
                endpoint_id=row["endpoint_id"], url=row["url"], event=row["event"],
                status=row["status"], attempts=tried[row["id"]],
                next_attempt_at=row["next_attempt_at"], created_at=row["created_at"],
                delivered_at=row["delivered_at"],
            )
            for row in rows
        ]  # fmt: skip

    def redeliver_webhooks(self, job_id: str, key_id: str, now: float | None = None) -> int:
        """Make the job's deliveries due again now, each keeping its webhook-id (it is
        the same event; one more attempt, plus whatever retries its schedule has left). A
        finished job none of whose events was queued (it had no webhook then) gets its
        final event queued now, to the key's current endpoints. Returns how many
        deliveries are due."""
        now = time.time() if now is None else now
        d = webhook_deliveries
        with self.engine.begin() as conn:
            count = conn.execute(
                update(d)
                .where(d.c.job_id == job_id, d.c.key_id == key_id)
                .values(status=PENDING, next_attempt_at=now, delivered_at=None)
            ).rowcount
            if count:
                return int(count)
            job = conn.execute(
                select(jobs.c.status, jobs.c.error_name).where(
                    jobs.c.id == job_id, jobs.c.key_id == key_id
                )
            ).first()
            if job is None or job.status not in ("completed", "error"):
                return 0
            enqueue(conn, [job_id], final_event(job.status, job.error_name), now)
            return int(
                conn.execute(
                    select(func.count()).select_from(d).where(d.c.job_id == job_id)
                ).scalar()
                or 0
            )
