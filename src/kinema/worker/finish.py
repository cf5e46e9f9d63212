"""The one place where a job finishes.

Whatever happened (a video, an engine's failure, a crash, a cancellation), the worker
turns it into an `Outcome` and records it here: the store writes the result, charges the
key (completed jobs only, exactly once) and appends the status event in one transaction.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kinema import pricing
from kinema.errors import StoreUnavailable
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
    retried run overwrites, never adds)."""
    from kinema.media.encode import probe_mp4

    info = probe_mp4(video)
    key = f"videos/{job.id}.mp4"
    storage.put(key, video, "video/mp4")
    return VideoOutput(
        key=key,
        content_type="video/mp4",
        file_name=f"{job.id}.mp4",
        file_size=info.file_size,
        duration=round(info.duration, 3),
        width=info.width,
        height=info.height,
        has_audio=info.has_audio,
    )


def completed(spec: ModelSpec, output: VideoOutput, settings: Settings) -> Completed:
    """The outcome of a produced video, charged for its real length."""
    return Completed(output, pricing.charge(spec, settings.prices, output.duration))


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
