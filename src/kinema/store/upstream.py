"""Durable upstream waits: the provider's job id (and the phase of its submit) is written
to the job row before a worker waits on it, so whichever worker runs the job next resumes
polling that same upstream job instead of paying for a second one. Mixed into `SqlStore`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError

from kinema.errors import StoreError, StoreUnavailable
from kinema.jobs.model import Status
from kinema.store.reads import is_outage
from kinema.store.schema import jobs


class SqlUpstream:
    engine: Engine

    def record_upstream(
        self, job_id: str, worker_id: str, backend: str, upstream: dict[str, Any] | None
    ) -> bool:
        """Record which backend runs the job and its upstream state, if the job is still
        this worker's (False: its lease was lost and another worker owns it now)."""
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(jobs)
                    .where(
                        (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id)
                        & (jobs.c.status == Status.GENERATING.value)
                    )
                    .values(backend=backend, upstream=upstream)
                )  # fmt: skip
        except SQLAlchemyError as exc:
            if is_outage(exc):
                raise StoreUnavailable() from exc
            raise StoreError(f"the job store failed: {type(exc).__name__}") from exc
        return result.rowcount == 1
