"""Operations endpoints: `/health` (the process is up), `/ready` (it can serve: the job
store answers, and which workers/capabilities are live), `/metrics` (Prometheus).

Metrics are read from the job store at scrape time, so every API replica reports the
same cluster-wide numbers and the worker processes need no metrics port of their own.
Per backend (local engine or upstream): jobs in flight, run-time quantiles and failures.
`/ready` also lists each configured upstream as reachable or not (a cached probe of its
`base_url`, sent without its key; an unreachable upstream does not make Kinema unready)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kinema.store import COMPLETED, GENERATING, QUEUED, JobStore

LIVE_SECONDS = 30.0  # a worker unseen for longer is not counted as live
PROBE_SECONDS = 30.0  # an upstream's reachability is probed at most this often
TIMING_WINDOW = 900.0  # wait/run time quantiles over jobs finished in the last 15 min


class StoreCollector(Collector):
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("kinema_jobs", "Jobs by model and status", labels=["model",
                                 "status"])  # fmt: skip
        depth = GaugeMetricFamily("kinema_queue_depth", "Queued jobs per model", labels=["model"])
        for model, status, count in self.store.job_counts():
            jobs.add_metric([model, status], count)
            if status == QUEUED:
                depth.add_metric([model], count)
        yield jobs
        yield depth
        failures = GaugeMetricFamily(
            "kinema_job_failures", "Failed jobs by error name", labels=["error"]
        )
        for name, count in self.store.failure_counts():
            failures.add_metric([name], count)
        yield failures
        yield from self._timings()
        now = time.time()
        live = self.store.workers(LIVE_SECONDS)
        yield GaugeMetricFamily("kinema_workers_live", "Workers seen recently", value=len(live))
        age = GaugeMetricFamily(
            "kinema_worker_heartbeat_age_seconds", "Seconds since each worker's heartbeat",
            labels=["worker", "host"],
        )  # fmt: skip
        for worker in live:
            age.add_metric([worker.id, worker.host], now - worker.last_seen)
        yield age

    def _timings(self) -> Iterator[Metric]:
        wait = GaugeMetricFamily(
            "kinema_job_wait_seconds", "Queued -> started, recent jobs", labels=["model",
                                                                                 "quantile"]
        )  # fmt: skip
        run = GaugeMetricFamily(
            "kinema_job_run_seconds", "Started -> completed, recent jobs", labels=["model",
                                                                                  "quantile"]
        )  # fmt: skip
        by_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for model, waited, ran in self.store.timings(time.time() - TIMING_WINDOW):
            by_model[model].append((waited, ran))
        for model, pairs in by_model.items():
            for family, values in ((wait, [p[0] for p in pairs]), (run, [p[1] for p in pairs])):
                for label, value in _quantiles(values).items():
                    family.add_metric([model, label], value)
        yield wait
        yield run


class BackendCollector(Collector):
    """Per backend: jobs in flight, run-time quantiles of recent jobs, failures. Read with
    SQL where the store has an engine (the SQL stores); other stores report failures."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        inflight = GaugeMetricFamily(
            "kinema_backend_jobs_in_flight", "Jobs being rendered, per backend",
            labels=["backend"],
        )  # fmt: skip
        runs = GaugeMetricFamily(
            "kinema_backend_run_seconds", "Started -> completed per backend, recent jobs",
            labels=["backend", "quantile"],
        )  # fmt: skip
        failures = GaugeMetricFamily(
            "kinema_backend_failures", "Failed generations per backend (not cancelled)",
            labels=["backend"],
        )  # fmt: skip
        completed = GaugeMetricFamily(
            "kinema_backend_completed", "Completed generations per backend", labels=["backend"]
        )
        outcomes = self.store.backend_outcomes(0.0)
        for backend, ok, bad in outcomes:
            if backend:
                completed.add_metric([backend], ok)
                failures.add_metric([backend], bad)
        counts, times = self._sql()
        known = {b for b, _, _ in outcomes if b} | set(counts) | set(times)
        for backend in sorted(known):
            inflight.add_metric([backend], counts.get(backend, 0))
        for backend, values in times.items():
            for label, value in _quantiles(values).items():
                runs.add_metric([backend, label], value)
        yield from (inflight, runs, failures, completed)

    def _sql(self) -> tuple[dict[str, int], dict[str, list[float]]]:
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return {}, {}
        from sqlalchemy import select

        from kinema.store.schema import jobs

        counts: dict[str, int] = defaultdict(int)
        times: dict[str, list[float]] = defaultdict(list)
        since = time.time() - TIMING_WINDOW
        with engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.backend, jobs.c.status, jobs.c.started_at, jobs.c.finished_at)
                .where(jobs.c.backend.is_not(None))
                .where(
                    (jobs.c.status == GENERATING)
                    | ((jobs.c.status == COMPLETED) & (jobs.c.finished_at >= since))
                )
            )  # fmt: skip
            for backend, status, started, finished in rows:
                if status == GENERATING:
                    counts[backend] += 1
                elif started is not None and finished is not None:
                    times[backend].append(float(finished - started))
        return dict(counts), dict(times)


class UpstreamProbe:
    """Whether each configured upstream answers HTTP at its base_url (any status counts:
    401/404 still mean reachable). Cached for PROBE_SECONDS; never sends a key."""

    def __init__(self) -> None:
        self.checked = 0.0
        self.result: dict[str, str] = {}
        self.lock = asyncio.Lock()

    async def status(self, upstreams: dict[str, dict[str, Any]]) -> dict[str, str]:
        if not upstreams:
            return {}
        async with self.lock:
            if time.monotonic() - self.checked > PROBE_SECONDS or set(self.result) != set(
                upstreams
            ):
                async with httpx.AsyncClient(timeout=2.0) as http:
                    names = sorted(upstreams)
                    found = await asyncio.gather(
                        *(self._one(http, str(upstreams[n].get("base_url", ""))) for n in names)
                    )
                self.result = dict(zip(names, found, strict=True))
                self.checked = time.monotonic()
            return dict(self.result)

    @staticmethod
    async def _one(http: httpx.AsyncClient, url: str) -> str:
        try:
            await http.get(url)
        except (httpx.HTTPError, ValueError):
            return "unreachable"
        return "reachable"


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"0.5": ordered[0], "0.99": ordered[0]}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"0.5": cuts[49], "0.99": cuts[98]}


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    workers: int = Field(description=f"Workers seen in the last {LIVE_SECONDS:g} s.")
    capabilities: list[str] = Field(description="What those workers can render.")
    upstreams: dict[str, Literal["reachable", "unreachable"]] = Field(
        default_factory=dict,
        description="Each configured upstream provider: whether its base URL answers.",
    )


class NotReady(BaseModel):
    status: Literal["unavailable"]
    database: str = Field(description="The job store's error, by class name.")


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def router(store: JobStore) -> APIRouter:
    api = APIRouter(tags=["Operations"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    registry.register(BackendCollector(store))
    probe = UpstreamProbe()

    @api.get("/health", summary="Liveness: the process answers", response_model=Health)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/ready", summary="Readiness: the job store answers; live workers",
        response_model=Ready,
        responses={503: {"model": NotReady, "description": "The job store does not answer."}},
    )  # fmt: skip
    async def ready(request: Request) -> JSONResponse:
        try:
            live = await run_in_threadpool(store.workers, LIVE_SECONDS)
        except Exception as exc:  # any store failure means "not ready", with the reason
            body: dict[str, Any] = {"status": "unavailable", "database": type(exc).__name__}
            return JSONResponse(body, status_code=503)
        capabilities = sorted({c for w in live for c in w.capabilities})
        settings = getattr(request.app.state, "settings", None)
        upstreams = await probe.status(dict(getattr(settings, "upstreams", None) or {}))
        return JSONResponse({
            "status": "ok", "database": "ok", "workers": len(live),
            "capabilities": capabilities, "upstreams": upstreams,
        })  # fmt: skip

    @api.get(
        "/metrics", summary="Prometheus metrics", response_class=Response,
        responses={200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }},
    )  # fmt: skip
    async def metrics() -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=METRICS_TYPE)

    return api
