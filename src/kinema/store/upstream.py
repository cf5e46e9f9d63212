"""Durable upstream waits: the provider's job id (and the phase of its submit) is written
to the job row before a worker waits on it, so whichever worker runs the job next resumes
polling that same upstream job instead of paying for a second one. And the batched
housekeeping of a worker's hundreds of waiting upstream jobs: one statement extends all
their leases, one finds those cancelled or deleted. Mixed into `SqlStore`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from kinema.errors import StoreError, StoreUnavailable
from kinema.jobs.model import Status
from kinema.store.reads import is_outage
from kinema.store.schema import jobs

# Ids per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500
T = TypeVar("T")


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        if is_outage(exc):
            raise StoreUnavailable() from exc
        raise StoreError(f"the job store failed: {type(exc).__name__}") from exc


def _chunked(ids: list[str], each: Callable[[list[str]], set[T]]) -> set[T]:
    found: set[T] = set()
    for start in range(0, len(ids), CHUNK):
        found |= each(ids[start : start + CHUNK])
    return found


class SqlUpstream:
    engine: Engine

    def record_upstream(
        self, job_id: str, worker_id: str, backend: str, upstream: dict[str, Any] | None
    ) -> bool:
        """Record which backend runs the job and its upstream state, if the job is still
        this worker's (False: its lease was lost and another worker owns it now)."""
        with _mapped(), self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id)
                    & (jobs.c.status == Status.GENERATING.value)
                )
                .values(backend=backend, upstream=upstream)
            )  # fmt: skip
        return result.rowcount == 1

    def renew_leases(self, job_ids: list[str], worker_id: str, lease_seconds: float) -> set[str]:
        """Extend the leases of those of `job_ids` that `worker_id` still holds, in one
        UPDATE (per CHUNK ids); returns the ids it holds."""
        until = time.time() + lease_seconds

        def renew(chunk: list[str]) -> set[str]:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id.in_(chunk), jobs.c.lease_owner == worker_id,
                        jobs.c.status == Status.GENERATING.value,
                    )
                    .values(lease_expires_at=until)
                    .returning(jobs.c.id)
                ).all()  # fmt: skip
            return {row.id for row in rows}

        with _mapped():
            return _chunked(job_ids, renew)

    def cancels_requested(self, job_ids: list[str]) -> set[str]:
        """Those of `job_ids` that must stop: cancelled by their owner, or deleted (one
        SELECT per CHUNK ids)."""

        def asked(chunk: list[str]) -> set[str]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(jobs.c.id, jobs.c.cancel_requested).where(jobs.c.id.in_(chunk))
                ).all()
            present = {row.id for row in rows}
            return {row.id for row in rows if row.cancel_requested} | (set(chunk) - present)

        with _mapped():
            return _chunked(job_ids, asked)
