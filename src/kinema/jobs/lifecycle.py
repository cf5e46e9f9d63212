"""What happens to a generation after submit, HTTP-free so every dialect and tool shares
it: cancel, delete (row, inputs and video), list pages."""

from __future__ import annotations

import base64
import binascii
import logging

from kinema.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from kinema.storage import BlobStorage
from kinema.store import CancelResult, Job, JobQueue

log = logging.getLogger("kinema.jobs")


def cancel(store: JobQueue, job_id: str, key_id: str) -> CancelResult:
    """Cancel one of `key_id`'s generations: NotFound if it is not theirs, Conflict if
    it already finished."""
    result = store.cancel(job_id, key_id)
    if result == CancelResult.NOT_FOUND:
        raise NotFound(f"Generation '{job_id}' was not found.")
    if result == CancelResult.FINISHED:
        raise Conflict(f"Generation '{job_id}' already finished; there is nothing to cancel.")
    return result


def delete_generation(
    store: JobQueue, storage: BlobStorage, job_id: str, key_id: str | None
) -> Job | None:
    """Delete a generation: its row (inputs, events, idempotency keys) first, so it answers
    404 everywhere at once, then its video. A running one's worker stops and discards."""
    job = store.delete_job(job_id, key_id)
    if job is not None and job.output:
        try:
            storage.delete(job.output["key"])
        except Exception:  # the row is gone; a stray blob is logged, not an error
            log.warning("generation %s: could not delete its video", job_id, exc_info=True)
    return job


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> int:
    """The position a list cursor stands for; a 400 naming `field` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("s") and raw[1:].isdigit():
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed(
        [FieldProblem(field, "not a cursor this server returned", "the `next` of a list page")]
    )
