"""The store's operational side on SQL: worker heartbeats and the aggregates behind
`/metrics` and `/ready`. Mixed into `SqlStore`; kept apart from the job lifecycle."""

from __future__ import annotations

import dataclasses
import time

from sqlalchemy import Engine, delete, func, insert, select, update

from kinema.store.base import COMPLETED, ERROR, WorkerInfo
from kinema.store.schema import jobs, workers


class SqlTelemetry:
    engine: Engine

    def worker_seen(self, worker: WorkerInfo) -> None:
        values = dataclasses.asdict(worker)
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(workers)
                .where(workers.c.id == worker.id)
                .values(
                    last_seen=worker.last_seen,
                    current_job=worker.current_job,
                    jobs_done=worker.jobs_done,
                    capabilities=worker.capabilities,
                )
            ).rowcount
            if updated == 0:
                conn.execute(insert(workers).values(**values))

    def worker_gone(self, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def workers(self, seen_within: float) -> list[WorkerInfo]:
        cutoff = time.time() - seen_within
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(workers).where(workers.c.last_seen >= cutoff).order_by(workers.c.id)
            ).mappings()
            return [WorkerInfo(**dict(row)) for row in rows]

    def job_counts(self) -> list[tuple[str, str, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.model, jobs.c.status, func.count()).group_by(
                    jobs.c.model, jobs.c.status
                )
            )
            return [(m, s, int(n)) for m, s, n in rows]

    def failure_counts(self) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.error_name, func.count())
                .where(jobs.c.status == ERROR)
                .group_by(jobs.c.error_name)
            )
            return [(name or "Error", int(n)) for name, n in rows]

    def timings(self, since: float) -> list[tuple[str, float, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    jobs.c.model,
                    jobs.c.started_at - jobs.c.created_at,
                    jobs.c.finished_at - jobs.c.started_at,
                ).where(
                    jobs.c.status == COMPLETED,
                    jobs.c.finished_at >= since,
                    jobs.c.started_at.is_not(None),
                )
            )
            return [(m, float(w), float(r)) for m, w, r in rows]
