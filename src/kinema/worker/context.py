"""The context one job's engine sees while a worker runs it; `beat()` runs on the
heartbeat thread: it extends the lease, pushes progress, and notices a lost lease."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.engines.base import Context, InputLimits
from kinema.inputs import FetchPolicy, fetch
from kinema.render_request import MediaRef
from kinema.store import Job

if TYPE_CHECKING:
    from kinema.worker.loop import Worker

log = logging.getLogger("kinema.worker")

PROGRESS_PUSH_SECONDS = 0.5  # progress is written at most this often
WATCH_SECONDS = 0.25  # how often cancellation and run timeouts are checked


class RunContext(Context):
    def __init__(self, worker: Worker, job: Job, work_dir: Path, policy: FetchPolicy) -> None:
        self.worker = worker
        self.job = job
        self.work_dir = work_dir
        self.output_path = work_dir / "output.mp4"
        self.policy = policy
        self.limits = InputLimits(
            max_input_bytes=worker.settings.max_input_bytes,
            max_image_pixels=worker.settings.max_image_pixels,
        )
        self._progress = 0
        self._pushed = -1
        self.lease_lost = threading.Event()
        self.cancel_asked = threading.Event()  # the owner cancelled (or deleted) the job
        self.timed_out = threading.Event()  # ran past its X-Kinema-Run-Timeout
        self.started = time.monotonic()

    def progress(self, fraction: float) -> None:
        # Stored as 0-99 while running: 100 is reserved for "completed".
        self._progress = max(self._progress, min(99, int(fraction * 100)))

    @property
    def cancelled(self) -> bool:
        return (
            self.lease_lost.is_set() or self.cancel_asked.is_set() or self.timed_out.is_set()
            or self.worker.hard_stop.is_set()
        )  # fmt: skip

    def fetch(self, ref: MediaRef) -> bytes:
        return fetch(ref.url, ref.field, ref.kind, self.policy)

    def beat(self) -> None:
        ok = self.worker.store.heartbeat(
            self.job.id, self.worker.id, self.worker.settings.lease_seconds, self._progress
        )
        self._pushed = self._progress
        if not ok:
            self.lease_lost.set()

    def watch(self) -> None:
        """Each tick: has the owner cancelled it, has it run out of time?"""
        timeout = self.job.run_timeout
        if timeout is not None and time.monotonic() - self.started > timeout:
            self.timed_out.set()
        if self.worker.store.cancel_requested(self.job.id):
            self.cancel_asked.set()

    def heartbeat_loop(self, done: threading.Event) -> None:
        interval = self.worker.settings.lease_seconds / 3
        last = time.monotonic()
        while not done.wait(WATCH_SECONDS):
            try:
                self.watch()
            except Exception:  # a store hiccup: the next tick asks again
                log.warning("cancel check for %s failed", self.job.id, exc_info=True)
            since = time.monotonic() - last
            moved = self._progress != self._pushed and since >= PROGRESS_PUSH_SECONDS
            if since >= interval or moved:
                try:
                    self.beat()
                    last = time.monotonic()
                except Exception:  # a store hiccup must not kill the job; the lease has slack
                    log.warning("heartbeat for %s failed; retrying", self.job.id, exc_info=True)
            if self.lease_lost.is_set():
                return
