"""The one place where a job finishes.

Whatever happened (a video, an engine's failure, a crash, a cancellation), the worker
turns it into an `Outcome` and records it here: the store writes the result, charges the
key (completed jobs only, exactly once) and appends the status event in one transaction.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from kinema import pricing
from kinema.errors import InputError, StoreUnavailable
from kinema.jobs.model import Completed, Outcome, VideoOutput
from kinema.settings import Settings
from kinema.specs import ModelSpec
from kinema.storage import BlobStorage
from kinema.store import Job, JobQueue

log = logging.getLogger("kinema.worker")

RECORD_ATTEMPTS = 5
STORE_RETRY_SECONDS = 1.0


def store_output(job: Job, video: Path, storage: BlobStorage) -> VideoOutput:
    """Check the engine's MP4 and put it in blob storage under the job's own key (a
    retried run overwrites, never adds). Its poster and spritesheet are only named here
    (deterministic keys beside it, so delete and retention remove them): they are made
    when first asked for, which keeps a second decode of the video off the completion. An
    extension (`extends` in the job's extras) is stored stitched onto the video it
    continues, whatever backend made it."""
    from kinema.media.encode import probe_mp4
    from kinema.media.poster_store import poster_keys
    from kinema.media.posters import stitched_onto

    generated = None
    source = extension_source(job)
    if source is not None:
        generated = round(probe_mp4(video).duration, 3)
        try:
            video = stitched_onto(source, video, storage)
        except FileNotFoundError:
            message = "the video it extends was deleted before this extension finished"
            raise InputError("video", message) from None
    info = probe_mp4(video)
    key = f"videos/{job.id}.mp4"
    storage.put(key, video, "video/mp4")
    thumbnail_key, spritesheet_key = poster_keys(job.id)
    return VideoOutput(
        key=key,
        content_type="video/mp4",
        file_name=f"{job.id}.mp4",
        file_size=info.file_size,
        duration=round(info.duration, 3),
        width=info.width,
        height=info.height,
        has_audio=info.has_audio,
        thumbnail_key=thumbnail_key,
        spritesheet_key=spritesheet_key,
        generated_seconds=generated,
    )


def extension_source(job: Job) -> str | None:
    """The storage key of the video this job continues (an OpenAI-dialect extension), or
    None for any other job."""
    extras = getattr(job, "extras", None)
    if isinstance(extras, str | bytes):
        extras = json.loads(extras)
    extends = extras.get("extends") if isinstance(extras, dict) else None
    key = extends.get("key") if isinstance(extends, dict) else None
    return key if isinstance(key, str) else None


def completed(
    spec: ModelSpec, output: VideoOutput, settings: Settings, backend: str | None = None
) -> Completed:
    """The outcome of a produced video, charged for its real length (of an extension: the
    part it generated)."""
    seconds = output.duration if output.generated_seconds is None else output.generated_seconds
    return Completed(output, pricing.charge(spec, settings.prices, seconds, backend))


class Finisher:
    def __init__(self, store: JobQueue, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id

    def finish(self, job: Job, outcome: Outcome) -> bool:
        """Record `outcome`, riding out a short store outage: the lease still runs, and
        redoing a whole job for a dropped connection would waste it. False when the job
        was no longer this worker's (its lease expired and another worker took it)."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                recorded = self.store.finish(job.id, self.worker_id, outcome)
            except StoreUnavailable:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise
                log.warning("job %s: recording its outcome failed; retrying", job.id)
                time.sleep(STORE_RETRY_SECONDS)
                continue
            if not recorded:
                log.warning("job %s: finished after losing its lease; outcome discarded", job.id)
            return recorded
        return False
