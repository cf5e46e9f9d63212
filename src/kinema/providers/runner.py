"""The worker's side of upstream jobs: one asyncio loop thread per worker process.

The worker hands every claimed job whose backend is an upstream to `Upstreams.take`; the
loop submits (or resumes), polls, mirrors the video into Kinema's storage and records the
outcome through the one `Finisher`, while the worker's own thread goes on claiming.
Waiting costs a sleeping coroutine per job: polls follow each provider's interval and
`Retry-After` (`sequence.py`), and one housekeeping task covers every job in flight with
batched statements: each `WATCH_SECONDS` one SELECT finds the jobs cancelled or deleted
(their pauses are woken, the provider's cancel is sent), each lease/3 one UPDATE extends
all their leases (a per-job heartbeat only where progress moved, for its event). The
PyAV check and the copy into storage run on a small thread pool of their own, so the
loop's store calls (records, housekeeping) never wait behind a burst of completions.

`run_sync` is the same sequence on the calling thread (`Worker.run_once`, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kinema.errors import CANCELLED_BY_OWNER, Cancelled, EngineError, JobFailure, StoreError
from kinema.inputs import FetchPolicy, fetch
from kinema.jobs.lifecycle import discard_orphan
from kinema.jobs.model import Failed
from kinema.providers import build_providers, offered
from kinema.providers.base import Done, Hooks, Provider, UpstreamError
from kinema.providers.failover import HandedOver, hand_over
from kinema.providers.sequence import render
from kinema.render_request import MediaRef, RenderRequest
from kinema.specs import spec_class
from kinema.store import Job

if TYPE_CHECKING:
    from kinema.worker.context import RunContext
    from kinema.worker.loop import Worker

log = logging.getLogger("kinema.providers")

# How often the jobs in flight are checked for cancellation and run timeouts (one SELECT
# for all of them): a cancelled upstream job reaches its provider within about this.
WATCH_SECONDS = 0.5


class LeaseLost(Exception):
    """The job row is no longer this worker's: stop without recording anything."""


def upstream_state(job: Job) -> dict[str, Any] | None:
    raw: Any = job.upstream
    if isinstance(raw, str | bytes):
        import json

        raw = json.loads(raw)
    return raw if isinstance(raw, dict) else None


@dataclass
class InFlight:
    job: Job
    started: float
    progress: int = 0
    pushed: int = 0  # the progress last written to the job row
    cancel: threading.Event = field(default_factory=threading.Event)
    why: str | None = None  # "owner" | "timeout" | "lease" | "shutdown"
    task: asyncio.Task[None] | None = None
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)  # ends a poll pause

    def halt(self, why: str) -> None:
        """Stop this job (on the loop's thread): its waiting loop wakes and sees why."""
        if self.cancel.is_set():
            return
        self.why = why
        self.cancel.set()
        self.wakeup.set()


class Upstreams:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.providers: dict[str, Provider] = build_providers(worker.settings)
        policy = FetchPolicy.from_settings(worker.settings)
        for provider in self.providers.values():
            provider.policy = policy
        self.inflight: dict[str, InFlight] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.http: dict[str, httpx.AsyncClient] = {}
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.lock = threading.Lock()
        self.housekeeper: asyncio.Task[None] | None = None
        # PyAV check + storage of finished videos: CPU and disk work, off the loop and
        # off the default pool the loop's store calls use.
        self.mirror_pool = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="upstream-mirror"
        )

    # ---- what the worker asks -----------------------------------------------------------
    def capabilities(self) -> set[str]:
        return {cap for provider in self.providers.values() for cap in offered(provider)}

    def serves(self, job: Job) -> bool:
        return job.backend in self.providers

    def take(self, job: Job) -> bool:
        """Hand an upstream job to the loop (True), or leave it to the worker (False)."""
        if not self.serves(job):
            return False
        loop = self._ensure_loop()
        entry = InFlight(job, time.monotonic())
        with self.lock:
            self.inflight[job.id] = entry

        def start() -> None:
            entry.task = loop.create_task(self._run_async(entry))

        loop.call_soon_threadsafe(start)
        return True

    def count(self) -> int:
        return len(self.inflight)

    def stop(self, hard_stop: threading.Event) -> None:
        """Shutdown: wait for jobs in flight until `hard_stop`, then hand the rest back
        to the queue (their upstream ids are recorded: the next worker resumes them)."""
        while self.inflight and not hard_stop.wait(0.2):
            pass
        loop = self.loop
        if loop is None:
            return
        for entry in list(self.inflight.values()):
            loop.call_soon_threadsafe(entry.halt, "shutdown")
            if entry.task is not None:
                loop.call_soon_threadsafe(entry.task.cancel)
        deadline = time.monotonic() + 5
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        for job_id in list(self.inflight):
            self.worker.store.release(job_id, self.worker.id)
        asyncio.run_coroutine_threadsafe(self._close(), loop)
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.mirror_pool.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        """(on the loop) End the housekeeping and the connections, then the loop."""
        if self.housekeeper is not None:
            self.housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.housekeeper
        for client in list(self.http.values()):
            with contextlib.suppress(Exception):
                await client.aclose()
        asyncio.get_running_loop().stop()

    # ---- the synchronous path (run_once, tests) ----------------------------------------
    def run_sync(self, job: Job, request: RenderRequest, ctx: RunContext) -> None:
        async def watch(wakeup: asyncio.Event) -> None:
            # The context's heartbeat thread notices cancellations; wake the poll pause.
            while not ctx.cancelled:
                await asyncio.sleep(WATCH_SECONDS / 2)
            wakeup.set()

        async def go() -> None:
            async with httpx.AsyncClient() as http:
                hooks = self._hooks(job, request, ctx.output_path, lambda: ctx.cancelled, ctx)
                hooks.wakeup = asyncio.Event()
                watcher = asyncio.create_task(watch(hooks.wakeup))
                try:
                    await self._render(job, request, hooks, lambda _name: http)
                finally:
                    watcher.cancel()

        asyncio.run(go())

    # ---- the loop -------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                ready: Future[None] = Future()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set_result, None)
                    self.housekeeper = loop.create_task(self._housekeeping())
                    loop.run_forever()

                self.thread = threading.Thread(target=run, name="upstreams", daemon=True)
                self.thread.start()
                ready.result(timeout=10)
                self.loop = loop
            return self.loop

    def _client(self, name: str) -> httpx.AsyncClient:
        if name not in self.http:
            self.http[name] = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=50)
            )
        return self.http[name]

    async def _housekeeping(self) -> None:
        """Cancellations and run timeouts each WATCH_SECONDS, leases each lease/3, for
        every job in flight at once."""
        renew_every = max(WATCH_SECONDS, self.worker.settings.lease_seconds / 3)
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            entries = [e for e in list(self.inflight.values()) if not e.cancel.is_set()]
            if not entries:
                continue
            renew = time.monotonic() - last_renewal >= renew_every
            try:
                halted = await asyncio.to_thread(self._watch, entries, renew)
            except Exception:  # a store hiccup: the leases have slack, the next tick asks
                log.warning("upstream housekeeping failed; retrying", exc_info=True)
                continue
            if renew:
                last_renewal = time.monotonic()
            for entry, why in halted:
                entry.halt(why)

    def _watch(self, entries: list[InFlight], renew: bool) -> list[tuple[InFlight, str]]:
        """(on a thread) Which of `entries` must stop, and why: at most three statements
        for all of them, plus one heartbeat per job whose progress moved."""
        store, worker = self.worker.store, self.worker
        ids = [entry.job.id for entry in entries]
        halted: dict[str, tuple[InFlight, str]] = {}
        if renew:
            held = store.renew_leases(ids, worker.id, worker.settings.lease_seconds)
            for entry in entries:
                if entry.job.id not in held:
                    halted[entry.job.id] = (entry, "lease")
                elif entry.progress != entry.pushed:  # its progress event, in order
                    progress = entry.progress
                    if store.heartbeat(
                        entry.job.id, worker.id, worker.settings.lease_seconds, progress
                    ):
                        entry.pushed = progress
        asked = store.cancels_requested(ids)
        now = time.monotonic()
        for entry in entries:
            job = entry.job
            if job.id in halted:
                continue
            if job.run_timeout is not None and now - entry.started > job.run_timeout:
                halted[job.id] = (entry, "timeout")
            elif job.id in asked:
                halted[job.id] = (entry, "owner")
        return list(halted.values())

    async def _run_async(self, entry: InFlight) -> None:
        job = entry.job
        worker = self.worker
        work_dir = worker.settings.data_dir / "work" / job.id
        try:
            await asyncio.to_thread(_fresh_dir, work_dir)
            spec = spec_class(job.route, job.model).model_validate(job.params)
            request = replace(spec.render(), capability=job.capability)

            def progress(fraction: float) -> None:
                entry.progress = max(entry.progress, min(99, int(fraction * 100)))

            hooks = self._hooks(job, request, work_dir / "output.mp4", entry.cancel.is_set, None)
            hooks.progress = progress
            hooks.wakeup = entry.wakeup
            await self._render(job, request, hooks, self._client)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.mirror_pool, self._complete, job, spec, hooks)
        except HandedOver:  # the next backend of the route takes it from the queue
            await asyncio.to_thread(worker.store.release, job.id, worker.id)
        except Cancelled as exc:
            await asyncio.to_thread(self._stopped, entry, exc)
        except asyncio.CancelledError:
            pass  # shutdown: stop() hands the job back to the queue
        except LeaseLost:
            log.warning("job %s: lease lost; result discarded", job.id)
        except JobFailure as exc:
            log.info("job %s failed: %s: %s", job.id, exc.name, exc.message)
            await asyncio.to_thread(worker.finisher.finish, job, Failed.of(exc))
        except StoreError:
            log.exception("job %s: store failed; the job's lease will expire", job.id)
        except Exception:
            log.exception("job %s: upstream run crashed", job.id)
            crash = EngineError(
                "The upstream run failed unexpectedly; the operator's log has the details "
                f"(job {job.id})."
            )
            try:
                await asyncio.to_thread(worker.finisher.finish, job, Failed.of(crash))
            except Exception:
                log.exception("job %s: could not record its failure", job.id)
        finally:
            with self.lock:
                self.inflight.pop(job.id, None)
            worker.jobs_done += 1
            # Not awaited: a task torn down with its loop (GeneratorExit) cannot await.
            try:
                self.mirror_pool.submit(shutil.rmtree, work_dir, True)
            except RuntimeError:  # the pool is shut down
                shutil.rmtree(work_dir, ignore_errors=True)

    def _complete(self, job: Job, spec: Any, hooks: Hooks) -> None:
        from kinema.worker.finish import completed, store_output

        worker = self.worker
        output = store_output(job, hooks.output_path, worker.storage)
        if not worker.finisher.finish(job, completed(spec, output, worker.settings, job.backend)):
            discard_orphan(worker.store, worker.storage, output, job.id)

    def _stopped(self, entry: InFlight, exc: Cancelled) -> None:
        job, finisher = entry.job, self.worker.finisher
        if entry.why == "lease":
            log.warning("job %s: lease lost; result discarded", job.id)
        elif entry.why == "owner":
            finisher.finish(job, Failed("Cancelled", CANCELLED_BY_OWNER))
        elif entry.why == "timeout":
            limit = f"{job.run_timeout:g}" if job.run_timeout is not None else "?"
            message = f"The generation ran longer than its run timeout of {limit} s; stopped."
            finisher.finish(job, Failed("TimedOut", message))
        elif entry.why == "shutdown":
            pass  # handed back by stop()
        else:
            finisher.finish(job, Failed.of(exc))

    # ---- shared by both paths -----------------------------------------------------------
    def _hooks(
        self,
        job: Job,
        request: RenderRequest,
        output_path: Path,
        cancelled: Any,
        ctx: RunContext | None,
    ) -> Hooks:
        worker = self.worker

        async def record(new: dict[str, Any]) -> None:
            backend = new.get("backend") or job.backend or ""
            ok = await asyncio.to_thread(
                worker.store.record_upstream, job.id, worker.id, backend, new
            )
            if not ok:
                raise LeaseLost()
            hooks.state = new

        async def fetch_input(ref: MediaRef) -> bytes:
            if ctx is not None:
                return await asyncio.to_thread(ctx.fetch, ref)
            return await asyncio.to_thread(fetch, ref.url, ref.field, ref.kind, worker.policy)

        hooks = Hooks(
            job_id=job.id, output_path=output_path, record=record, fetch=fetch_input,
            cancelled=cancelled, params=job.params, state=upstream_state(job),
        )  # fmt: skip
        return hooks

    async def _render(self, job: Job, request: RenderRequest, hooks: Hooks, client: Any) -> Done:
        """Render on the job's backend; one that fails before accepting the job hands it
        to the next backend of the model's route (`failover.py`)."""
        backend = job.backend or ""
        provider = self.providers.get(backend)
        if provider is None:
            raise EngineError(f"No upstream named '{backend}' is configured here.")
        semaphore = self.semaphores.setdefault(
            backend, asyncio.Semaphore(provider.options.concurrency)
        )
        try:
            async with semaphore:
                return await render(provider, client(backend), request, hooks)
        except UpstreamError as exc:
            await hand_over(self.worker, self.providers, job, hooks, backend, exc)
            raise  # pragma: no cover (hand_over always raises)


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
