"""The admin API's view of the service: queue depth per model, live workers and their
engines, engines and their health, recent failures by error name (`api/admin.py`
assembles the router)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from kinema.api.admin_models import EngineList, FailureList, QueueReport, WorkerList
from kinema.api.admin_shared import SECURITY, error_responses, utc
from kinema.engines import EngineSet
from kinema.jobs.model import Status
from kinema.store import JobStore

LIVE_SECONDS = 30.0  # a worker unseen for longer is not live (as /ready and /metrics)
HEALTH_WINDOW = 3600.0  # engine health: outcomes of the last hour


def engine_device(engines: EngineSet, name: str) -> str | None:
    engine = engines.engines.get(name)
    if engine is None:
        return None
    device = getattr(engine.options, "device", None)
    if isinstance(device, str):
        return device
    return "upstream" if _is_upstream(engine) else "cpu"


def _is_upstream(engine: object) -> bool:
    return ".providers" in type(engine).__module__ or bool(getattr(engine, "upstream", False))


def engine_kind(engines: EngineSet, name: str) -> Literal["local", "gpu", "upstream"]:
    engine = engines.engines.get(name)
    if engine is not None and _is_upstream(engine):
        return "upstream"
    device = engine_device(engines, name) or ""
    return "gpu" if device.startswith(("cuda", "mps", "xpu")) else "local"


def add_health_routes(api: APIRouter, store: JobStore, engines: EngineSet) -> None:
    @api.get(
        "/queue", summary="Queue depth per model", response_model=QueueReport,
        responses=error_responses(401, 403, 503), openapi_extra=SECURITY,
    )  # fmt: skip
    def queue() -> dict[str, Any]:
        depth: dict[str, dict[str, int]] = defaultdict(lambda: {"queued": 0, "generating": 0})
        for model, status, count in store.job_counts():
            if status in (Status.QUEUED, Status.GENERATING):
                depth[model][str(status)] += count
        data = [{"model": m, **counts} for m, counts in sorted(depth.items())]
        return {
            "data": data,
            "queued": sum(d["queued"] for d in depth.values()),
            "generating": sum(d["generating"] for d in depth.values()),
        }

    def offering(capabilities: list[str]) -> list[str]:
        wanted = set(capabilities)
        return [name for name, offers in engines.offers.items() if offers & wanted]

    @api.get(
        "/workers", summary="Live workers and their engines", response_model=WorkerList,
        responses=error_responses(401, 403, 503), openapi_extra=SECURITY,
        description="Workers that sent a heartbeat in the last 30 s, with what they can "
        "render, the engines (and their devices) configured for it, and the job they run.",
    )  # fmt: skip
    def workers() -> dict[str, Any]:
        data = []
        for w in store.workers(LIVE_SECONDS):
            names = offering(w.capabilities)
            devices = sorted({d for n in names if (d := engine_device(engines, n))})
            data.append({
                "id": w.id, "host": w.host, "pid": w.pid, "capabilities": sorted(w.capabilities),
                "engines": names, "devices": devices, "current_job": w.current_job,
                "jobs_done": w.jobs_done, "started_at": utc(w.started_at),
                "last_seen": utc(w.last_seen),
            })  # fmt: skip
        return {"data": data, "live_seconds": LIVE_SECONDS}

    @api.get(
        "/engines", summary="Engines (backends) and their health", response_model=EngineList,
        responses=error_responses(401, 403, 503), openapi_extra=SECURITY,
        description="Every configured engine, local, GPU or upstream: whether it can run "
        "here, whether a live worker serves it, and its outcomes over the last hour.",
    )  # fmt: skip
    def engine_health() -> dict[str, Any]:
        live = store.workers(LIVE_SECONDS)
        outcomes = {name: (ok, bad) for name, ok, bad in store.backend_outcomes(
            time.time() - HEALTH_WINDOW)}  # fmt: skip
        routes = engines.routes()
        data = []
        for name, offers in engines.offers.items():
            ok, bad = outcomes.get(name, (0, 0))
            serving = sum(1 for w in live if offers & set(w.capabilities))
            reason = engines.disabled.get(name)
            status: str
            if reason is not None:
                status = "disabled"
            elif serving == 0:
                status = "no_worker"
            elif bad > ok and bad >= 3:
                status = "degraded"
                reason = f"{bad} of its {ok + bad} generations in the last hour failed"
            else:
                status = "ok"
            data.append({
                "name": name, "status": status, "kind": engine_kind(engines, name),
                "device": engine_device(engines, name), "capabilities": sorted(offers),
                "routes": sorted(c for c, n in routes.items() if n == name),
                "workers": serving, "completed": ok, "failed": bad, "reason": reason,
            })  # fmt: skip
        return {"data": data, "routes": routes}

    @api.get(
        "/failures", summary="Recent failures by error name", response_model=FailureList,
        responses=error_responses(400, 401, 403, 503), openapi_extra=SECURITY,
    )  # fmt: skip
    def failures(hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24) -> dict[str, Any]:
        since = time.time() - hours * 3600
        data = [
            {"name": f.name, "count": f.count, "last_at": utc(f.last_at),
             "last_message": f.last_message, "last_model": f.last_model}
            for f in store.recent_failures(since)
        ]  # fmt: skip
        return {"since": utc(since), "data": data}
