"""The job lifecycle beyond submit -> finish, on SQL: idempotent submits, cancellation,
start deadlines, listing, deletion and retention. Mixed into `SqlStore`."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, String, any_, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kinema.errors import CANCELLED_BY_OWNER, StoreError
from kinema.jobs.model import Status
from kinema.store import webhooks
from kinema.store.base import (
    CancelResult,
    Idempotency,
    IdempotencyConflict,
    Job,
    JobStatus,
    NewJob,
)
from kinema.store.reads import STATUS_COLUMNS, FastReads, status_of_row
from kinema.store.rows import job_of_row, log_events
from kinema.store.schema import idempotency_keys, job_events, jobs

IDEMPOTENCY_SECONDS = 24 * 3600


class _IdempotencyRace(Exception):
    """Another request claimed the same Idempotency-Key first: undo ours, read theirs."""


class SqlLifecycle:
    engine: Engine
    reads: FastReads

    def _insert_job(self, conn: Connection, job: NewJob) -> Job:  # SqlStore provides it
        raise TypeError("SqlLifecycle is a mixin of SqlStore")

    # ---- idempotent submits ------------------------------------------------------------
    def create_job_once(self, job: NewJob, idempotency: Idempotency) -> tuple[Job, bool]:
        for _ in range(3):
            found = self.idempotent_replay(job.key_id, idempotency)
            if found is not None:
                return found, True
            try:
                with self.engine.begin() as conn:
                    made = self._insert_job(conn, job)
                    if not self._claim_key(conn, job.key_id, idempotency, made.id):
                        raise _IdempotencyRace()
                    return made, False
            except _IdempotencyRace:
                continue  # the other request committed first: replay its job
        raise StoreError("an Idempotency-Key kept changing hands; retry the request")

    def idempotent_replay(self, key_id: str, idempotency: Idempotency) -> Job | None:
        # IdempotencyConflict when the key came with another request (see JobQueue).
        cutoff = time.time() - IDEMPOTENCY_SECONDS
        with self.engine.connect() as conn:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.key_id == key_id,
                    idempotency_keys.c.idempotency_key == idempotency.key,
                    idempotency_keys.c.created_at >= cutoff,
                )
            ).mappings().first()  # fmt: skip
            if row is None:
                return None
            if row["request_hash"] != idempotency.request_hash:
                raise IdempotencyConflict(row["job_id"])
            job = conn.execute(select(jobs).where(jobs.c.id == row["job_id"])).mappings().first()
        return job_of_row(job) if job is not None else None

    def _claim_key(
        self, conn: Connection, key_id: str, idempotency: Idempotency, job_id: str
    ) -> bool:
        """Record the key for `job_id` unless another request holds it (one statement:
        ON CONFLICT DO NOTHING, so two replicas racing make exactly one job)."""
        now = time.time()
        conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.key_id == key_id,
                idempotency_keys.c.idempotency_key == idempotency.key,
                idempotency_keys.c.created_at < now - IDEMPOTENCY_SECONDS,
            )
        )
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = (
            dialect.insert(idempotency_keys)
            .values(
                key_id=key_id, idempotency_key=idempotency.key,
                request_hash=idempotency.request_hash, job_id=job_id, created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.job_id)
        )  # fmt: skip
        return conn.execute(stmt).first() is not None

    # ---- listing ---------------------------------------------------------------------
    def list_jobs(
        self,
        key_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        status: Status | None = None,
        model: str | None = None,
    ) -> list[JobStatus]:
        query = select(*(jobs.c[name] for name in STATUS_COLUMNS), literal(0)).where(
            jobs.c.key_id == key_id
        )
        if before_seq is not None:
            query = query.where(jobs.c.seq < before_seq)
        if status is not None:
            query = query.where(jobs.c.status == str(status))
        if model is not None:
            query = query.where(jobs.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(jobs.c.seq.desc()).limit(limit)).all()
        found = [status_of_row(row) for row in rows]
        return [
            _with_position(job, self.reads.queued_ahead(job.seq))
            if job.status == Status.QUEUED
            else job
            for job in found
        ]

    # ---- cancellation ------------------------------------------------------------------
    def cancel(self, job_id: str, key_id: str) -> CancelResult:
        now = time.time()
        mine = (jobs.c.id == job_id) & (jobs.c.key_id == key_id)
        with self.engine.begin() as conn:
            stopped = conn.execute(
                update(jobs)
                .where(mine, jobs.c.status == Status.QUEUED)
                .values(
                    status=Status.ERROR, error_name="Cancelled", error_message=CANCELLED_BY_OWNER,
                    credits_used=0, finished_at=now, lease_owner=None, lease_expires_at=None,
                )
                .returning(jobs.c.id)
            ).first()  # fmt: skip
            if stopped is not None:
                log_events(conn, [job_id], "status", Status.ERROR, 0, now)
                webhooks.enqueue(conn, [job_id], webhooks.CANCELLED_EVENT, now)
                return CancelResult.CANCELLED
            asked = conn.execute(
                update(jobs)
                .where(mine, jobs.c.status == Status.GENERATING)
                .values(cancel_requested=True)
            ).rowcount
            if asked:
                return CancelResult.STOPPING
            exists_ = conn.execute(select(jobs.c.id).where(mine)).first()
        return CancelResult.FINISHED if exists_ is not None else CancelResult.NOT_FOUND

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).first()
        return row is None or bool(row[0])

    def expire_overdue(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            expired = list(
                conn.execute(
                    update(jobs)
                    .where(jobs.c.status == Status.QUEUED, jobs.c.start_deadline < now)
                    .values(
                        status=Status.ERROR, error_name="Expired", credits_used=0,
                        error_message="The generation did not start before its start "
                        "deadline (X-Kinema-Start-Timeout); it was not run or charged.",
                        finished_at=now,
                    )
                    .returning(jobs.c.id)
                ).scalars()
            )  # fmt: skip
            log_events(conn, expired, "status", Status.ERROR, 0, now)
            webhooks.enqueue(conn, expired, webhooks.FAILED_EVENT, now)
        return expired

    # ---- deletion and retention ----------------------------------------------------------
    def delete_job(self, job_id: str, key_id: str | None) -> Job | None:
        where: Any = jobs.c.id == job_id
        if key_id is not None:
            where = where & (jobs.c.key_id == key_id)
        with self.engine.begin() as conn:
            row = conn.execute(delete(jobs).where(where).returning(*jobs.c)).mappings().first()
        return job_of_row(row) if row is not None else None

    def finished_before(self, cutoff: float, limit: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(jobs.c.id)
                    .where(jobs.c.finished_at < cutoff)
                    .order_by(jobs.c.finished_at)
                    .limit(limit)
                ).scalars()
            )

    # ---- event streams -------------------------------------------------------------------
    def latest_event_ids(self, job_ids: list[str]) -> dict[str, int]:
        # The ids travel as one parameter (an array; a JSON list on SQLite), so the
        # statement is the same for any number of streams.
        ids: Any = list(job_ids)
        if self.engine.dialect.name == "postgresql":
            wanted = job_events.c.job_id == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
        else:
            listed = func.json_each(bindparam("ids")).table_valued("value")
            wanted = job_events.c.job_id.in_(select(listed.c.value))
            ids = json.dumps(ids)
        query = select(job_events.c.job_id, func.max(job_events.c.id)).where(wanted)
        with self.engine.connect() as conn:
            rows = conn.execute(query.group_by(job_events.c.job_id), {"ids": ids}).all()
        return {job_id: int(top) for job_id, top in rows}


def _with_position(job: JobStatus, position: int) -> JobStatus:
    return replace(job, queue_position=position)
