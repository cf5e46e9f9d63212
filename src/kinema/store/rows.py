"""Small helpers shared by the SQL store's modules: rows to records, event log writes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import RowMapping, insert
from sqlalchemy.engine import Connection

from kinema.jobs.model import Status
from kinema.store.base import Job
from kinema.store.schema import job_events


def job_of_row(row: RowMapping) -> Job:
    values = dict(row)
    values["status"] = Status(values["status"])
    return Job(**values)


def log_events(
    conn: Connection, job_ids: Iterable[str], kind: str, status: str, progress: int, now: float
) -> None:
    """Append one event per job (the status/progress log behind streams and audits)."""
    rows = [
        {"job_id": job_id, "kind": kind, "status": str(status), "progress": progress,
         "created_at": now}
        for job_id in job_ids
    ]  # fmt: skip
    if rows:
        conn.execute(insert(job_events), rows)
