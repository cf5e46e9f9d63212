"""`SqlStore`: the job store on SQLAlchemy Core, SQLite (WAL) by default, PostgreSQL by
URL. Claims are one `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`;
SQLite ignores the locking clause and serialises writers instead, so the same statement is
atomic on both."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Engine,
    RowMapping,
    create_engine,
    event,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from kinema.errors import CreditsExhausted, StoreError, StoreUnavailable, WorkerLost
from kinema.jobs.model import Completed, Outcome, Status
from kinema.store import webhooks
from kinema.store.admin import SqlAdmin
from kinema.store.base import (
    COMPLETED,
    ERROR,
    GENERATING,
    PENDING,
    PROGRESS_EVENT_STEP,
    QUEUED,
    ApiKey,
    Job,
    JobEvent,
    JobStatus,
    JobStore,
    NewJob,
    Recovered,
)
from kinema.store.lifecycle import SqlLifecycle
from kinema.store.migrate import migrate
from kinema.store.reads import FastReads, is_outage
from kinema.store.rows import job_of_row as _job
from kinema.store.rows import log_events as _log
from kinema.store.schema import api_keys, job_events, jobs
from kinema.store.telemetry import SqlTelemetry
from kinema.store.upstream import SqlUpstream
from kinema.store.wakeup import Wakeup, announce
from kinema.store.webhooks import SqlWebhooks

F = TypeVar("F", bound=Callable[..., Any])


def _speaks_kinema(method: F) -> F:
    """SQLAlchemy's exceptions stay inside the store: an outage becomes StoreUnavailable,
    anything else from the database a StoreError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            if is_outage(exc):
                raise StoreUnavailable() from exc
            raise StoreError(f"the job store failed: {type(exc).__name__}") from exc

    return wrapper  # type: ignore[return-value]


def _store_errors_only(cls: type[JobStore]) -> type[JobStore]:
    for name in dir(JobStore):
        if not name.startswith("_") and callable(getattr(JobStore, name)):
            setattr(cls, name, _speaks_kinema(getattr(cls, name)))
    return cls


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Reads through mmap instead of read() syscalls: the poll hot path is all reads.
            cursor.execute("PRAGMA mmap_size=268435456")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        credits=row["credits"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


@_store_errors_only
class SqlStore(SqlLifecycle, SqlWebhooks, SqlTelemetry, SqlUpstream, SqlAdmin, JobStore):
    def __init__(self, url: str, *, run_migrations: bool = True, wakeup: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.reads = FastReads(self.engine)
        self.wakeup = Wakeup(self.engine, enabled=wakeup)
        # SQLite reads are local microsecond lookups: cheap enough for the event loop.
        self.reads_are_local = self.engine.dialect.name == "sqlite"
        if run_migrations:
            migrate(self.engine)

    def close(self) -> None:
        self.wakeup.close()
        self.engine.dispose()

    def wait_for_work(self, timeout: float) -> bool:
        return self.wakeup.wait(timeout)

    # ---- keys ----------------------------------------------------------------------
    def create_key(
        self, name: str, credits: int | None, secret: str | None = None
    ) -> tuple[ApiKey, str]:
        secret = secret or "kn-" + secrets.token_urlsafe(32)
        values = {
            "id": "key_" + secrets.token_hex(6),
            "name": name,
            "key_hash": hash_secret(secret),
            "prefix": secret[:10],
            "credits": credits,
            "created_at": time.time(),
            "revoked_at": None,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(**values))
        return _key(values), secret  # type: ignore[arg-type]

    def ensure_key(self, secret: str, name: str) -> ApiKey:
        """Register `secret` (unlimited credits) unless it is already known."""
        found = self.authenticate(secret)
        if found:
            return found
        with self.engine.begin() as conn:
            row = (
                conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_secret(secret)))
                .mappings()
                .first()
            )
            if row is not None:  # known but revoked: registering it again re-enables it
                conn.execute(
                    update(api_keys).where(api_keys.c.id == row["id"]).values(revoked_at=None)
                )
                return _key({**row, "revoked_at": None})  # type: ignore[arg-type]
        return self.create_key(name, None, secret)[0]

    def authenticate(self, secret: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(api_keys).where(
                        api_keys.c.key_hash == hash_secret(secret), api_keys.c.revoked_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return _key(row) if row else None

    def list_keys(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()
            return [_key(r) for r in rows]

    def _find_key(self, id_or_prefix: str) -> Any:
        return or_(api_keys.c.id == id_or_prefix, api_keys.c.prefix == id_or_prefix[:10])

    def revoke_key(self, id_or_prefix: str) -> ApiKey | None:
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    update(api_keys)
                    .where(self._find_key(id_or_prefix), api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=time.time())
                    .returning(*api_keys.c)
                )
                .mappings()
                .first()
            )
        return _key(row) if row else None

    def add_credits(self, id_or_prefix: str, credits: int | None) -> ApiKey | None:
        value = None if credits is None else func.coalesce(api_keys.c.credits, 0) + credits
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    update(api_keys)
                    .where(self._find_key(id_or_prefix))
                    .values(credits=value)
                    .returning(*api_keys.c)
                )
                .mappings()
                .first()
            )
        return _key(row) if row else None

    # ---- jobs: API side ------------------------------------------------------------
    def create_job(self, job: NewJob) -> Job:
        with self.engine.begin() as conn:
            return self._insert_job(conn, job)

    def _insert_job(self, conn: Connection, job: NewJob) -> Job:
        job_id = secrets.token_urlsafe(15)
        values: dict[str, Any] = {
            "id": job_id, "key_id": job.key_id, "route": job.route, "model": job.model,
            "capability": job.capability, "status": QUEUED, "progress": 0, "attempts": 0,
            "max_attempts": job.max_attempts, "price": job.price, "created_at": time.time(),
            "priority": job.priority, "start_deadline": job.start_deadline,
            "run_timeout": job.run_timeout, "webhook_url": job.webhook_url,
            "backend": job.backend,
        }  # fmt: skip
        if job.extras is not None:
            values["extras"] = job.extras
        pending = (
            select(func.coalesce(func.sum(jobs.c.price), 0))
            .where(jobs.c.key_id == job.key_id, jobs.c.status.in_(PENDING))
            .scalar_subquery()
        )
        affordable = exists(
            select(api_keys.c.id).where(
                api_keys.c.id == job.key_id,
                or_(api_keys.c.credits.is_(None), api_keys.c.credits - pending >= job.price),
            )
        )
        columns = {name: jobs.c[name].type for name in values}
        row_source = select(
            *(literal(v, columns[k]) for k, v in values.items()), literal(job.params, JSON)
        ).where(affordable)
        # Serialise submits of one key on PostgreSQL (SQLite already serialises writers).
        balance = conn.execute(
            select(api_keys.c.credits).where(api_keys.c.id == job.key_id).with_for_update()
        ).scalar()
        inserted = conn.execute(
            insert(jobs).from_select([*values, "params"], row_source).returning(jobs.c.seq)
        ).first()
        if inserted is None:
            spent = conn.execute(select(pending)).scalar() or 0
            raise CreditsExhausted(max(0, int(balance or 0) - int(spent)))
        announce(conn)
        _log(conn, [job_id], "status", QUEUED, 0, values["created_at"])
        return _job(conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one())

    def get_job(self, job_id: str, key_id: str | None = None) -> Job | None:
        return self.reads.job(job_id, key_id)

    def get_status(self, job_id: str, key_id: str) -> JobStatus | None:
        return self.reads.status(job_id, key_id)

    def queue_position(self, job: Job | JobStatus) -> int:
        return self.reads.queued_ahead(job.seq) if job.status == QUEUED else 0

    def pending_count(self, key_id: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.key_id == key_id, jobs.c.status.in_(PENDING))
            ).scalar()
        return int(count or 0)

    # ---- jobs: worker side ---------------------------------------------------------
    def claim(self, worker_id: str, capabilities: list[str], lease_seconds: float) -> Job | None:
        now = time.time()
        # Fair between keys: the job of the key served least recently goes first (so one
        # key's 200 queued jobs cannot starve another's one), then by the key's own
        # priority, then oldest first. A job past its start deadline is never started.
        chosen = (
            select(jobs.c.id)
            .join(api_keys, api_keys.c.id == jobs.c.key_id)
            .where(
                jobs.c.status == QUEUED,
                jobs.c.capability.in_(capabilities),
                or_(jobs.c.start_deadline.is_(None), jobs.c.start_deadline > now),
            )
            .order_by(
                api_keys.c.last_claimed_at.asc().nulls_first(),
                jobs.c.priority.desc(),
                jobs.c.seq,
            )
            .limit(1)
            .with_for_update(skip_locked=True, of=jobs)
            .scalar_subquery()
        )
        stmt = (
            update(jobs)
            .where(jobs.c.id == chosen, jobs.c.status == QUEUED)
            .values(
                status=GENERATING,
                lease_owner=worker_id,
                lease_expires_at=now + lease_seconds,
                attempts=jobs.c.attempts + 1,
                started_at=func.coalesce(jobs.c.started_at, now),
                progress=0,
            )
            .returning(*jobs.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is not None:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == row["key_id"])
                    .values(last_claimed_at=now)
                )
                _log(conn, [row["id"]], "status", GENERATING, 0, now)
                webhooks.enqueue(conn, [row["id"]], webhooks.STARTED_EVENT, now)
        return _job(row) if row else None

    def _owned(self, job_id: str, worker_id: str) -> Any:
        return (
            (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id)
            & (jobs.c.status == GENERATING)
        )  # fmt: skip

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float, progress: int) -> bool:
        now = time.time()
        step = PROGRESS_EVENT_STEP
        with self.engine.begin() as conn:
            # Lock the row first (extending the lease), so a concurrent finish cannot slip
            # between this progress event and the progress it records: events stay in the
            # order of the changes they report.
            held = conn.execute(
                update(jobs)
                .where(self._owned(job_id, worker_id))
                .values(lease_expires_at=now + lease_seconds)
            ).rowcount
            if held != 1:
                return False
            # A progress event when this write crosses a step boundary (integer division
            # on both SQLite and PostgreSQL), decided against the stored value.
            logged = conn.execute(
                insert(job_events)
                .from_select(
                    ["job_id", "kind", "status", "progress", "created_at"],
                    select(
                        jobs.c.id, literal("progress"), jobs.c.status, literal(progress),
                        literal(now),
                    ).where(jobs.c.id == job_id, jobs.c.progress / step < progress // step),
                )
                .returning(job_events.c.id)
            ).first()  # fmt: skip
            if logged is not None:
                webhooks.enqueue(conn, [job_id], webhooks.PROGRESS_EVENT, now)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(progress=progress))
        return True

    def finish(self, job_id: str, worker_id: str, outcome: Outcome) -> bool:
        now = time.time()
        if isinstance(outcome, Completed):
            values: dict[str, Any] = {
                "status": COMPLETED, "progress": 100, "output": outcome.output.as_dict(),
                "credits_used": outcome.credits,
            }  # fmt: skip
        else:
            values = {
                "status": ERROR, "error_name": outcome.name, "error_message": outcome.message,
                "credits_used": 0,
            }  # fmt: skip
        with self.engine.begin() as conn:
            row = conn.execute(
                update(jobs)
                .where(self._owned(job_id, worker_id))
                .values(**values, lease_owner=None, lease_expires_at=None, finished_at=now)
                .returning(jobs.c.key_id, jobs.c.progress)
            ).first()
            if row is None:
                return False
            _log(conn, [job_id], "status", values["status"], row.progress, now)
            event = webhooks.final_event(values["status"], values.get("error_name"))
            webhooks.enqueue(conn, [job_id], event, now)
            if isinstance(outcome, Completed):
                # Charged in the same transaction as the completion: exactly once.
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == row.key_id, api_keys.c.credits.is_not(None))
                    .values(credits=api_keys.c.credits - outcome.credits)
                )
        return True

    def release(self, job_id: str, worker_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(self._owned(job_id, worker_id))
                .values(
                    status=QUEUED, progress=0, attempts=jobs.c.attempts - 1,
                    lease_owner=None, lease_expires_at=None,
                )
            )  # fmt: skip
            if result.rowcount == 1:
                _log(conn, [job_id], "status", QUEUED, 0, time.time())
        return result.rowcount == 1

    def recover_expired(self, now: float | None = None) -> Recovered:
        now = time.time() if now is None else now
        expired = (jobs.c.status == GENERATING) & (jobs.c.lease_expires_at < now)
        lost = WorkerLost()
        with self.engine.begin() as conn:
            failed = conn.execute(
                update(jobs)
                .where(expired, jobs.c.attempts >= jobs.c.max_attempts)
                .values(
                    status=ERROR, error_name=lost.name,
                    error_message=lost.message, credits_used=0,
                    lease_owner=None, lease_expires_at=None, finished_at=now,
                )
                .returning(jobs.c.id)
            ).scalars().all()  # fmt: skip
            requeued = (
                conn.execute(
                    update(jobs)
                    .where(expired, jobs.c.attempts < jobs.c.max_attempts)
                    .values(status=QUEUED, progress=0, lease_owner=None, lease_expires_at=None)
                    .returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            _log(conn, failed, "status", ERROR, 0, now)
            webhooks.enqueue(conn, failed, webhooks.FAILED_EVENT, now)
            _log(conn, requeued, "status", QUEUED, 0, now)
        return Recovered(requeued=list(requeued), failed=list(failed))

    def events(self, job_id: str, after: int = 0) -> list[JobEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(job_events)
                .where(job_events.c.job_id == job_id, job_events.c.id > after)
                .order_by(job_events.c.id)
            ).mappings()
            return [JobEvent(**{**dict(row), "status": Status(row["status"])}) for row in rows]
