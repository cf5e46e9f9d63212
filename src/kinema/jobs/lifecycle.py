"""What happens to a generation after submit, HTTP-free so every dialect and tool shares
it: cancel, delete (row, inputs and video), list pages."""

from __future__ import annotations

import logging

from kinema.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from kinema.jobs.model import VideoOutput
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
        delete_blobs(storage, VideoOutput.from_dict(job.output), job_id)
    return job


def delete_blobs(storage: BlobStorage, output: VideoOutput, job_id: str) -> None:
    """The video, its thumbnail and spritesheet. The row is gone already: a blob that
    cannot be deleted is logged, not an error."""
    try:
        for key in output.blob_keys():
            storage.delete(key)
    except Exception:
        log.warning("generation %s: could not delete its video", job_id, exc_info=True)


def discard_orphan(store: JobQueue, storage: BlobStorage, output: VideoOutput, job_id: str) -> None:
    """A worker stored `output` but could not record it. If the generation was deleted
    meanwhile, its blobs must not outlive it; if another worker took the job over, the
    blobs (same keys) are that worker's now and stay."""
    if store.get_job(job_id) is None:
        delete_blobs(storage, output, job_id)


CURSOR_PATTERN = r"^[0-9]{1,18}$"


def encode_cursor(seq: int) -> str:
    """A list page's `next`: the position the next page starts below (keyset paging, so
    pages stay stable while new generations arrive)."""
    return str(seq)


def decode_cursor(cursor: str, field: str = "after") -> int:
    """The position a list cursor stands for; a 400 naming `field` if it is not one."""
    if cursor.isascii() and cursor.isdigit() and len(cursor) <= 18:
        return int(cursor)
    raise ValidationFailed(
        [FieldProblem(field, "not a cursor this server returned", "the `next` of a list page")]
    )
