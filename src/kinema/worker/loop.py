"""The worker: claim a job, run its engine, store the video, record the outcome.

A claimed job carries a lease; a heartbeat thread extends it while the engine runs and
pushes progress. If the heartbeat finds the lease gone (another worker recovered the job
after this one stalled), the engine is cancelled and its result discarded. Any worker
re-queues jobs whose lease expired (their worker died); after `max_attempts` runs the job
fails with `WorkerLost`. SIGTERM stops claiming and lets the current job finish for up to
`drain_seconds`; past that it is handed back to the queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from dataclasses import replace
from types import FrameType

from kinema.engines import EngineSet
from kinema.errors import CANCELLED_BY_OWNER, Cancelled, EngineError, JobFailure, StoreError
from kinema.inputs import FetchPolicy
from kinema.jobs.lifecycle import delete_generation, discard_orphan
from kinema.jobs.model import Failed
from kinema.providers.runner import Upstreams
from kinema.render_request import RenderRequest
from kinema.settings import Settings
from kinema.specs import spec_class
from kinema.storage import BlobStorage, open_storage
from kinema.store import Job, JobStore, WorkerInfo, open_store
from kinema.webhooks.dispatcher import start_dispatcher
from kinema.worker.context import RunContext
from kinema.worker.finish import Finisher, completed, store_output

log = logging.getLogger("kinema.worker")

PRESENCE_SECONDS = 5.0  # how often a worker refreshes its row in the workers table
STORE_RETRY_SECONDS = 1.0
DEADLINE_SWEEP_SECONDS = 1.0
RETENTION_SWEEP_SECONDS = 3600.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: JobStore | None = None,
        storage: BlobStorage | None = None,
        engines: EngineSet | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings.resolved_database_url, wakeup=settings.job_wakeup)
        self.storage = storage or open_storage(settings)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.policy = FetchPolicy.from_settings(settings)
        self.stop = threading.Event()  # no new claims
        self.hard_stop = threading.Event()  # cancel the running job
        self.engine_set = engines or EngineSet.configure(settings.engines, settings.engine_options)
        self.routes: dict[str, str] = {}
        # Upstream jobs wait on one asyncio loop thread, not in this worker's slot.
        self.upstreams = Upstreams(self)
        self.loaded = False
        self.finisher = Finisher(self.store, self.id)
        self._last_recovery = 0.0
        self._last_deadlines = 0.0
        self._last_retention = 0.0
        self.started_at = time.time()
        self.current_job: str | None = None
        self.jobs_done = 0

    def load(self) -> None:
        """Load the engines; one that fails is disabled, and the worker serves the rest."""
        self.engine_set.load()
        self.routes = self.engine_set.routes()
        for capability in self.upstreams.capabilities():
            self.routes.setdefault(capability, "upstream")
        self.loaded = True
        served = ", ".join(sorted(self.routes)) or "nothing (every engine is disabled)"
        log.info("worker %s ready: %s", self.id, served)

    # ---- presence ------------------------------------------------------------------
    def report_presence(self) -> None:
        self.store.worker_seen(
            WorkerInfo(
                id=self.id, host=socket.gethostname(), pid=os.getpid(),
                capabilities=sorted(self.routes), started_at=self.started_at,
                last_seen=time.time(), current_job=self.current_job, jobs_done=self.jobs_done,
            )
        )  # fmt: skip

    def _presence_now(self) -> None:
        try:
            self.report_presence()
        except Exception:  # presence is informational; the job leases do the safety
            log.warning("worker %s: presence update failed", self.id, exc_info=True)

    def presence_loop(self) -> None:
        while not self.stop.wait(PRESENCE_SECONDS):
            self._presence_now()

    # ---- the loop ------------------------------------------------------------------
    def run(self) -> None:
        if not self.loaded:
            self.load()
        self.report_presence()
        threading.Thread(target=self.presence_loop, name="presence", daemon=True).start()
        webhooks = start_dispatcher(self.settings, self.store, self.storage)
        try:
            self._loop()
        finally:
            self.upstreams.stop(self.hard_stop)
            if webhooks is not None:
                webhooks.stop()
            try:
                self.store.worker_gone(self.id)
            except Exception:
                log.warning("worker %s: could not remove its row", self.id, exc_info=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.recover()
            try:
                job = self.store.claim(self.id, list(self.routes), self.settings.lease_seconds)
            except Exception:
                # The database is restarting or unreachable: nothing is lost (queued jobs
                # stay queued, running ones have leases); try again shortly.
                log.warning("worker %s: claim failed; retrying", self.id, exc_info=True)
                self.stop.wait(STORE_RETRY_SECONDS)
                continue
            if job is None:
                try:
                    self.store.wait_for_work(self.settings.poll_interval)
                except Exception:
                    self.stop.wait(STORE_RETRY_SECONDS)
                continue
            if self.upstreams.take(job):
                continue  # waited on by the upstream loop; this slot claims the next job
            try:
                self.run_job(job)
            except Exception:
                # Recording the outcome failed (store unreachable): the job keeps its
                # lease, which expires, and the job runs again; its output key is per job.
                log.exception("worker %s: could not record job %s", self.id, job.id)

    def run_once(self) -> Job | None:
        """Claim and run one job on this thread, start to finish (tests and tools drive a
        worker step by step with it); None when nothing this worker serves is queued."""
        if not self.loaded:
            self.load()
        self.recover()
        job = self.store.claim(self.id, list(self.routes), self.settings.lease_seconds)
        if job is not None:
            self.run_job(job)
        return job

    def recover(self) -> None:
        """The store's housekeeping, shared by every worker: re-queue jobs of dead workers
        (each half lease), expire queued jobs past their start deadline (each second),
        delete generations past the retention period (each RETENTION_SWEEP_SECONDS)."""
        now = time.monotonic()
        try:
            if now - self._last_deadlines >= DEADLINE_SWEEP_SECONDS:
                self._last_deadlines = now
                for job_id in self.store.expire_overdue():
                    log.info("job %s: not started before its start deadline; expired", job_id)
            if self.settings.retention_days is not None and (
                now - self._last_retention >= RETENTION_SWEEP_SECONDS
            ):
                self._last_retention = now
                self.sweep_retention()
            if now - self._last_recovery < self.settings.lease_seconds / 2:
                return
            self._last_recovery = now
            found = self.store.recover_expired()
        except Exception:
            log.warning("store housekeeping failed; will retry", exc_info=True)
            return
        for job_id in found.requeued:
            log.warning("job %s: its worker stopped responding; re-queued", job_id)
        for job_id in found.failed:
            log.error("job %s: out of attempts after worker failures; failed", job_id)

    def sweep_retention(self) -> int:
        """Delete generations (rows, inputs, videos) finished more than
        `retention_days` ago. Returns how many went."""
        days = self.settings.retention_days
        if days is None:
            return 0
        cutoff = time.time() - days * 86400
        removed = 0
        while ids := self.store.finished_before(cutoff, 500):
            for job_id in ids:
                removed += delete_generation(self.store, self.storage, job_id, None) is not None
        if removed:
            log.info("retention: deleted %d generations older than %g days", removed, days)
        return removed

    def run_job(self, job: Job) -> None:
        work_dir = self.settings.data_dir / "work" / job.id
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        ctx = RunContext(self, job, work_dir, self.policy)
        self.current_job = job.id
        self._presence_now()
        done = threading.Event()
        beater = threading.Thread(target=ctx.heartbeat_loop, args=(done,), daemon=True)
        beater.start()
        started = time.monotonic()
        log.info("job %s (%s) attempt %d: started", job.id, job.model, job.attempts)
        try:
            self._run(job, ctx)
        finally:
            self.current_job = None
            self.jobs_done += 1
            done.set()
            beater.join()
            shutil.rmtree(work_dir, ignore_errors=True)
            log.info("job %s: finished in %.2f s", job.id, time.monotonic() - started)

    def _run(self, job: Job, ctx: RunContext) -> None:
        """Run the engine and record what happened through the one finish path."""
        try:
            spec = spec_class(job.route, job.model).model_validate(job.params)
            self._generate(job, spec.render(), ctx)
            output = store_output(job, ctx.output_path, self.storage)
        except Cancelled as exc:
            self._stopped(job, ctx, exc)
            return
        except JobFailure as exc:
            log.info("job %s failed: %s: %s", job.id, exc.name, exc.message)
            self.finisher.finish(job, Failed.of(exc))
            return
        except StoreError:
            # The job store failed, not the engine: leave the job to its lease (it expires
            # and the job runs again; its output key is per job, charged once).
            raise
        except Exception:
            log.exception("job %s: engine crashed", job.id)
            crash = EngineError(
                "The engine failed unexpectedly while generating this video; the operator's "
                f"log has the details (job {job.id})."
            )
            self.finisher.finish(job, Failed.of(crash))
            return
        if not self.finisher.finish(job, completed(spec, output, self.settings, job.backend)):
            discard_orphan(self.store, self.storage, output, job.id)

    def _stopped(self, job: Job, ctx: RunContext, exc: Cancelled) -> None:
        """Why a job stopped early decides what is recorded."""
        if ctx.lease_lost.is_set():
            log.warning("job %s: lease lost; result discarded", job.id)
        elif ctx.cancel_asked.is_set():
            log.info("job %s: cancelled by its owner", job.id)
            self.finisher.finish(job, Failed("Cancelled", CANCELLED_BY_OWNER))
        elif ctx.timed_out.is_set():
            limit = f"{job.run_timeout:g}" if job.run_timeout is not None else "?"
            message = f"The generation ran longer than its run timeout of {limit} s; stopped."
            self.finisher.finish(job, Failed("TimedOut", message))
        elif self.store.release(job.id, self.id):
            log.info("job %s: handed back to the queue (shutdown)", job.id)
        else:
            self.finisher.finish(job, Failed.of(exc))

    def _generate(self, job: Job, request: RenderRequest, ctx: RunContext) -> None:
        # The API chose the capability at submit (possibly the request's fallback); the
        # job row records it and this worker claimed the job because it serves it.
        request = replace(request, capability=job.capability)
        if self.upstreams.serves(job):
            self.upstreams.run_sync(job, request, ctx)
            ctx.check_cancelled()
            return
        engine_name = self.routes.get(job.capability)
        if job.backend in self.engine_set.engines:
            engine_name = job.backend
        if engine_name not in self.engine_set.engines:
            raise EngineError(
                f"No engine on this worker serves '{job.capability}'.", "CapabilityMissing"
            )
        self.engine_set.engines[engine_name].generate(request, ctx)
        ctx.check_cancelled()


def serve_forever(settings: Settings, supervisor_pid: int | None = None) -> None:
    """`kinema worker`: run one worker until told to stop. SIGTERM (or the first Ctrl-C)
    drains: no new claims, the running job gets `drain_seconds` to finish. A second
    Ctrl-C stops at once (the job goes back to the queue). A worker started by
    `kinema serve` also drains when that server process disappears."""
    worker = Worker(settings)
    worker.load()

    def drain(reason: str) -> None:
        if worker.stop.is_set():
            return
        worker.stop.set()
        timer = threading.Timer(settings.drain_seconds, worker.hard_stop.set)
        timer.daemon = True
        timer.start()
        log.info("worker %s: draining (%s)", worker.id, reason)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and worker.stop.is_set():
            worker.hard_stop.set()
            return
        drain(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if supervisor_pid is not None:

        def watch_parent() -> None:
            while not worker.stop.wait(1.0):
                if os.getppid() != supervisor_pid:
                    drain("the server process is gone")

        threading.Thread(target=watch_parent, daemon=True).start()
    worker.run()
    worker.store.close()
    log.info("worker %s: stopped", worker.id)
