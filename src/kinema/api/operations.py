"""Operations endpoints: `/health` (the process is up), `/ready` (it can serve: the job
store answers, and which workers/capabilities are live), `/metrics` (Prometheus).

Metrics are read from the job store at scrape time, so every API replica reports the
same cluster-wide numbers and the worker processes need no metrics port of their own."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kinema.store import QUEUED, JobStore

LIVE_SECONDS = 30.0  # a worker unseen for longer is not counted as live
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


class NotReady(BaseModel):
    status: Literal["unavailable"]
    database: str = Field(description="The job store's error, by class name.")


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def router(store: JobStore) -> APIRouter:
    api = APIRouter(tags=["Operations"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))

    @api.get("/health", summary="Liveness: the process answers", response_model=Health)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/ready", summary="Readiness: the job store answers; live workers",
        response_model=Ready,
        responses={503: {"model": NotReady, "description": "The job store does not answer."}},
    )  # fmt: skip
    def ready() -> JSONResponse:
        try:
            live = store.workers(LIVE_SECONDS)
        except Exception as exc:  # any store failure means "not ready", with the reason
            body: dict[str, Any] = {"status": "unavailable", "database": type(exc).__name__}
            return JSONResponse(body, status_code=503)
        capabilities = sorted({c for w in live for c in w.capabilities})
        return JSONResponse(
            {"status": "ok", "database": "ok", "workers": len(live), "capabilities": capabilities}
        )

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
