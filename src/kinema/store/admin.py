"""The operator's side of the store on SQL: which keys are admin keys, per-key usage over
time, recent failures by error name, and the audit log of admin actions. Mixed into
`SqlStore`; the interface is `kinema.store.base.AdminStore`.

Usage is read from the jobs themselves (submitted by `created_at`, completed and failed
by `finished_at`), so it needs no counters kept elsewhere and agrees with `/metrics`.
Deleted generations leave the usage with their rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Engine, case, cast, func, insert, or_, select, update

from kinema.jobs.model import Status
from kinema.store.schema import admin_audit, api_keys, jobs

# Failures that say nothing about a backend's health: the request's own inputs, or its
# owner or deadline ended it.
NOT_THE_BACKENDS = ("Cancelled", "Expired", "InvalidInput", "FaceNotFound")


@dataclass(frozen=True)
class KeyUsage:
    """One key's activity in one time bucket `[start, start + bucket seconds)`."""

    key_id: str
    start: float
    jobs: int = 0  # generations submitted
    completed: int = 0
    failed: int = 0  # finished with an error (cancelled ones included)
    seconds: float = 0.0  # seconds of video rendered (completed generations)
    credits: int = 0  # credits charged


@dataclass(frozen=True)
class FailureSummary:
    """Failed generations of one error name since a time, and the newest of them."""

    name: str
    count: int
    last_at: float
    last_message: str
    last_model: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str  # the admin key's id
    action: str  # e.g. key.create, key.revoke, key.credit
    target: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def _key_matches(id_or_prefix: str) -> Any:
    return or_(api_keys.c.id == id_or_prefix, api_keys.c.prefix == id_or_prefix[:10])


def _bucket(column: Any, seconds: int) -> Any:
    # Integer division on both SQLite and PostgreSQL (a second of rounding in the cast
    # does not matter at bucket sizes of an hour or more).
    return (cast(column, BigInteger) // seconds) * seconds


class SqlAdmin:
    engine: Engine

    def set_admin(self, id_or_prefix: str, admin: bool) -> str | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                update(api_keys)
                .where(_key_matches(id_or_prefix))
                .values(admin=admin)
                .returning(api_keys.c.id)
            ).first()
        return None if row is None else str(row[0])

    def is_admin(self, key_id: str) -> bool:
        with self.engine.connect() as conn:
            value = conn.execute(select(api_keys.c.admin).where(api_keys.c.id == key_id)).scalar()
        return bool(value)

    def admin_key_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys.c.id).where(api_keys.c.admin.is_(True)))
            return {str(r[0]) for r in rows}

    def key_usage(
        self, since: float, bucket_seconds: int, key_id: str | None = None
    ) -> list[KeyUsage]:
        bucket_seconds = max(1, int(bucket_seconds))
        submitted_at = _bucket(jobs.c.created_at, bucket_seconds).label("start")
        finished_at = _bucket(jobs.c.finished_at, bucket_seconds).label("start")
        submitted = (
            select(jobs.c.key_id, submitted_at, func.count().label("n"))
            .where(jobs.c.created_at >= since)
            .group_by(jobs.c.key_id, submitted_at)
        )
        completed = jobs.c.status == str(Status.COMPLETED)
        seconds = case((completed, jobs.c.output["duration"].as_float()), else_=0.0)
        finished = (
            select(
                jobs.c.key_id,
                finished_at,
                func.sum(case((completed, 1), else_=0)).label("completed"),
                func.sum(case((jobs.c.status == str(Status.ERROR), 1), else_=0)).label("failed"),
                func.coalesce(func.sum(seconds), 0.0).label("seconds"),
                func.coalesce(func.sum(jobs.c.credits_used), 0).label("credits"),
            )
            .where(jobs.c.finished_at.is_not(None), jobs.c.finished_at >= since)
            .group_by(jobs.c.key_id, finished_at)
        )
        if key_id is not None:
            submitted = submitted.where(jobs.c.key_id == key_id)
            finished = finished.where(jobs.c.key_id == key_id)
        merged: dict[tuple[str, float], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(submitted).mappings():
                slot = merged.setdefault((row["key_id"], float(row["start"])), {})
                slot["jobs"] = int(row["n"])
            for row in conn.execute(finished).mappings():
                slot = merged.setdefault((row["key_id"], float(row["start"])), {})
                slot.update(
                    completed=int(row["completed"] or 0),
                    failed=int(row["failed"] or 0),
                    seconds=round(float(row["seconds"] or 0.0), 3),
                    credits=int(row["credits"] or 0),
                )
        return [
            KeyUsage(key_id=key, start=start, **values)
            for (key, start), values in sorted(merged.items(), key=lambda item: item[0][::-1])
        ]

    def recent_failures(self, since: float, limit: int = 20) -> list[FailureSummary]:
        name = func.coalesce(jobs.c.error_name, "Error")
        failed = (jobs.c.status == str(Status.ERROR)) & (jobs.c.finished_at >= since)
        with self.engine.connect() as conn:
            groups = conn.execute(
                select(name.label("name"), func.count().label("n"), func.max(jobs.c.finished_at))
                .where(failed)
                .group_by(name)
                .order_by(func.count().desc(), name)
                .limit(limit)
            ).all()
            found = []
            for error_name, count, last_at in groups:
                newest = conn.execute(
                    select(jobs.c.error_message, jobs.c.model)
                    .where(failed, name == error_name)
                    .order_by(jobs.c.finished_at.desc())
                    .limit(1)
                ).first()
                message, model = newest if newest is not None else ("", "")
                found.append(
                    FailureSummary(
                        str(error_name), int(count), float(last_at), message or "", model
                    )
                )
        return found

    def backend_outcomes(self, since: float) -> list[tuple[str, int, int]]:
        completed = jobs.c.status == str(Status.COMPLETED)
        error_name = func.coalesce(jobs.c.error_name, "")
        failed = (jobs.c.status == str(Status.ERROR)) & error_name.not_in(NOT_THE_BACKENDS)
        backend = func.coalesce(jobs.c.backend, "")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    backend,
                    func.sum(case((completed, 1), else_=0)),
                    func.sum(case((failed, 1), else_=0)),
                )
                .where(jobs.c.finished_at.is_not(None), jobs.c.finished_at >= since)
                .group_by(backend)
            ).all()
        return [(str(name), int(ok or 0), int(bad or 0)) for name, ok, bad in rows]

    def record_audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> AuditEntry:
        at = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                insert(admin_audit)
                .values(at=at, actor=actor, action=action, target=target, detail=detail)
                .returning(admin_audit.c.id)
            ).first()
        assert row is not None
        return AuditEntry(int(row[0]), at, actor, action, target, dict(detail))

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(admin_audit).order_by(admin_audit.c.id.desc()).limit(limit)
            ).mappings()
            return [
                AuditEntry(
                    r["id"], r["at"], r["actor"], r["action"], r["target"], dict(r["detail"] or {})
                )
                for r in rows
            ]
