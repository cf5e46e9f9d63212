"""The worker's side of upstream jobs: one asyncio loop thread per worker process.

The worker hands every claimed job whose backend is an upstream to `Upstreams.take`; the
loop submits (or resumes), polls, mirrors the video into Kinema's storage and records the
outcome through the one `Finisher`, while the worker's own thread goes on claiming. One
housekeeping task extends the leases of every job in flight (and notices cancellations,
run timeouts and lost leases) every lease/3 seconds, so hundreds of waiting jobs cost a
few sleeping coroutines and one small UPDATE each per period.

`run_sync` is the same sequence on the calling thread (`Worker.run_once`, tests).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kinema.errors import CANCELLED_BY_OWNER, Cancelled, EngineError, JobFailure, StoreError
from kinema.inputs import FetchPolicy, fetch
from kinema.jobs.lifecycle import discard_orphan
from kinema.jobs.model import Failed
from kinema.providers import build_providers, choose_backend, offered, route_of
from kinema.providers.base import ACCEPTED, Done, Hooks, Provider, UpstreamError, render
from kinema.specs import spec_class
from kinema.specs.base import MediaRef, RenderRequest
from kinema.store import Job

if TYPE_CHECKING:
    from kinema.worker.context import RunContext
    from kinema.worker.loop import Worker

log = logging.getLogger("kinema.providers")


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
    cancel: threading.Event = field(default_factory=threading.Event)
    why: str | None = None  # "owner" | "timeout" | "lease"
    task: asyncio.Task[None] | None = None


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
            entry.why = "shutdown"
            entry.cancel.set()
            if entry.task is not None:
                loop.call_soon_threadsafe(entry.task.cancel)
        deadline = time.monotonic() + 5
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        for job_id in list(self.inflight):
            self.worker.store.release(job_id, self.worker.id)
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(timeout=5)

    # ---- the synchronous path (run_once, tests) ----------------------------------------
    def run_sync(self, job: Job, request: RenderRequest, ctx: RunContext) -> None:
        async def go() -> None:
            async with httpx.AsyncClient() as http:
                hooks = self._hooks(job, request, ctx.output_path, lambda: ctx.cancelled, ctx)
                await self._render(job, request, hooks, lambda _name: http)

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
        """Leases, cancellations and run timeouts of every job in flight."""
        settings = self.worker.settings
        interval = max(0.2, settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            entries = list(self.inflight.values())
            if entries:
                try:
                    await asyncio.to_thread(self._beat, entries)
                except Exception:  # a store hiccup: the leases have slack
                    log.warning("upstream heartbeat failed; retrying", exc_info=True)

    def _beat(self, entries: list[InFlight]) -> None:
        store, worker = self.worker.store, self.worker
        for entry in entries:
            job = entry.job
            if entry.cancel.is_set():
                continue
            if not store.heartbeat(
                job.id, worker.id, worker.settings.lease_seconds, entry.progress
            ):
                entry.why = "lease"
                entry.cancel.set()
                continue
            timeout = job.run_timeout
            if timeout is not None and time.monotonic() - entry.started > timeout:
                entry.why = "timeout"
                entry.cancel.set()
            elif store.cancel_requested(job.id):
                entry.why = "owner"
                entry.cancel.set()

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
            await self._render(job, request, hooks, self._client)
            await asyncio.to_thread(self._complete, job, spec, hooks)
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
            await asyncio.to_thread(shutil.rmtree, work_dir, True)

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
        """Render on the job's backend; a backend that fails before accepting the job
        passes it to the next upstream of the model's route that serves its capability."""
        backend = job.backend or ""
        tried: list[str] = []
        while True:
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
                state = hooks.state or {}
                accepted = state.get("backend") == backend and state.get("phase") == ACCEPTED
                if exc.name != "UpstreamUnavailable" or accepted:
                    raise
                tried.append(backend)
                following = self._next_backend(job, tried)
                if following is None:
                    raise
                log.warning(
                    "job %s: upstream %s unavailable; trying %s", job.id, backend, following
                )
                backend = following
                await hooks.record({"backend": backend, "phase": "routed"})

    def _next_backend(self, job: Job, tried: list[str]) -> str | None:
        route = route_of(self.worker.settings, job.model)
        rest = [name for name in route if name not in tried and name in self.providers]
        if not rest:
            return None
        offers = {name: offered(self.providers[name]) for name in rest}
        found = choose_backend(rest, job.capability, None, {}, offers)
        return found[0] if found else None


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
