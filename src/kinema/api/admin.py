"""The admin API behind the operator console (`/v2/admin/...`): keys (create, shown once;
list with usage; revoke; credit), per-key usage over time, queue depth per model, live
workers and their engines, engines and their health, recent failures by error name, and
the audit log.

Admin keys only: a key made with `kinema keys create --admin` (any other valid key gets
403). The key travels in the `Authorization: Bearer` header and nowhere else: no cookie
or session, so a page on another origin cannot make a browser act here (no CSRF), and
cross-origin reads are refused by the browser (no CORS headers). Every change is audited:
one `kinema.admin` log line and one `admin_audit` row naming the admin key (never a
secret); `GET /v2/admin/audit` reads them back.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kinema.api.auth import Authenticator
from kinema.dialects.aimlapi_models import ErrorEnvelope
from kinema.engines import EngineSet
from kinema.errors import Conflict, NotFound
from kinema.jobs.model import Status
from kinema.store import ApiKey, JobStore
from kinema.store.admin import KeyUsage

log = logging.getLogger("kinema.admin")

PREFIX = "/v2/admin"
LIVE_SECONDS = 30.0  # a worker unseen for longer is not live (as /ready and /metrics)
FORBIDDEN = (
    "This endpoint needs an admin key. Create one on the server with "
    "`kinema keys create --name NAME --admin`."
)
MAX_CREDITS = 10**15  # a balance's ceiling ($500,000,000): far inside a 64-bit column
HEALTH_WINDOW = 3600.0  # engine health: outcomes of the last hour
ERRORS = {
    400: "Invalid request; `details` names each refused field.",
    401: "Missing, invalid or revoked API key.",
    403: "A valid key that is not an admin key.",
    404: "No key matches.",
    409: "The change would take the balance below 0 or above 10^15 credits.",
    503: "The job store is unreachable; retry later.",
}
SECURITY: dict[str, Any] = {"security": [{"bearer": []}]}
KeyRef = Annotated[
    str,
    Path(
        min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="The key's id (`key_…`) or its first 10 characters (its prefix).",
    ),
]  # fmt: skip


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope, "description": ERRORS[code]} for code in codes}


def _time(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


# ---------------------------------------------------------------------- models
class UsageTotals(BaseModel):
    jobs: int = Field(description="Generations submitted.")
    completed: int
    failed: int = Field(description="Finished with an error (cancelled ones included).")
    seconds_rendered: float = Field(description="Seconds of video delivered.")
    credits_used: int = Field(description="Credits charged.")


class AdminKey(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The secret's first 10 characters (not a secret).")
    admin: bool
    credits: int | None = Field(description="Balance; null = unlimited.")
    created_at: datetime
    revoked_at: datetime | None
    usage: UsageTotals = Field(description="Over the window the listing asked for.")


class KeyList(BaseModel):
    data: list[AdminKey]
    days: int = Field(description="The usage window, in days.")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    credits: int | None = Field(
        default=None, ge=0, le=MAX_CREDITS, description="Balance; null = unlimited."
    )
    admin: bool = Field(default=False, description="An operator key (this API, the console).")


class CreatedKey(AdminKey):
    secret: str = Field(description="The key itself: shown in this answer only, stored hashed.")


class AddCredits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    add: int = Field(
        ge=-MAX_CREDITS, le=MAX_CREDITS,
        description="Credits to add (negative: take back; the balance stays >= 0).",
    )  # fmt: skip


class MakeUnlimited(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    unlimited: Literal[True] = Field(description="Make the balance unlimited.")


CreditChange = AddCredits | MakeUnlimited


class UsagePoint(BaseModel):
    key_id: str
    start: datetime = Field(description="Start of the bucket.")
    jobs: int
    completed: int
    failed: int
    seconds_rendered: float
    credits_used: int


class UsageSeries(BaseModel):
    since: datetime
    bucket_seconds: int
    data: list[UsagePoint] = Field(description="Per key and bucket, oldest first; empty "
                                   "buckets are left out.")  # fmt: skip


class QueueDepth(BaseModel):
    model: str
    queued: int
    generating: int


class QueueReport(BaseModel):
    data: list[QueueDepth]
    queued: int = Field(description="All queued generations.")
    generating: int = Field(description="All generations being rendered.")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    capabilities: list[str]
    engines: list[str] = Field(description="Engines that offer those capabilities here.")
    devices: list[str] = Field(description="Devices of those engines (cpu, cuda:0, upstream…).")
    current_job: str | None
    jobs_done: int
    started_at: datetime
    last_seen: datetime


class WorkerList(BaseModel):
    data: list[WorkerOut]
    live_seconds: float = Field(description="Workers seen within this many seconds.")


class EngineHealth(BaseModel):
    name: str
    status: Literal["ok", "degraded", "no_worker", "disabled"] = Field(
        description="ok: enabled and a live worker serves it; degraded: most of its jobs of "
        "the last hour failed; no_worker: enabled but no live worker offers what it "
        "serves; disabled: it cannot run here (see reason)."
    )
    kind: Literal["local", "gpu", "upstream"]
    device: str | None
    capabilities: list[str]
    routes: list[str] = Field(description="Capabilities this engine is the first choice for.")
    workers: int = Field(description="Live workers offering any of its capabilities.")
    completed: int = Field(description="Generations it completed in the last hour.")
    failed: int = Field(
        description="... and failed, not counting failures of the request itself "
        "(cancelled, expired, invalid input, no face found)."
    )
    reason: str | None = Field(description="Why it is disabled or degraded.")


class EngineList(BaseModel):
    data: list[EngineHealth]
    routes: dict[str, str] = Field(description="capability -> the engine that serves it.")


class FailureOut(BaseModel):
    name: str
    count: int
    last_at: datetime
    last_message: str
    last_model: str


class FailureList(BaseModel):
    since: datetime
    data: list[FailureOut] = Field(description="By error name, most frequent first.")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="The admin key that acted.")
    action: str
    target: str | None
    detail: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditOut] = Field(description="Newest first.")


# ---------------------------------------------------------------------- helpers
def _totals(rows: list[KeyUsage]) -> UsageTotals:
    return UsageTotals(
        jobs=sum(r.jobs for r in rows), completed=sum(r.completed for r in rows),
        failed=sum(r.failed for r in rows), seconds_rendered=round(sum(r.seconds for r in rows), 3),
        credits_used=sum(r.credits for r in rows),
    )  # fmt: skip


def _key_out(key: ApiKey, admin: bool, usage: list[KeyUsage]) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "admin": admin,
        "credits": key.credits, "created_at": _time(key.created_at),
        "revoked_at": _time(key.revoked_at), "usage": _totals(usage),
    }  # fmt: skip


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


class Audit:
    """One log line and one audit row per admin action; never a secret."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def __call__(self, actor: ApiKey, action: str, target: str | None, **detail: Any) -> None:
        log.info(
            "admin %s (%s): %s %s %s",
            actor.id, actor.name, action, target or "-",
            " ".join(f"{k}={v!r}" for k, v in detail.items()),
        )  # fmt: skip
        self.store.record_audit(actor.id, action, target, detail)


def current_admin(request: Request) -> ApiKey:
    """The admin key of this request (checked by the router's own dependency first)."""
    key: ApiKey = request.state.admin_key
    return key


Actor = Annotated[ApiKey, Depends(current_admin)]


# ---------------------------------------------------------------------- routes
def router(store: JobStore, auth: Authenticator, engines: EngineSet) -> APIRouter:
    def require_admin(request: Request) -> None:
        key = auth(request)
        if not store.is_admin(key.id):
            raise HTTPException(403, FORBIDDEN)
        request.state.admin_key = key

    api = APIRouter(prefix=PREFIX, tags=["Admin"], dependencies=[Depends(require_admin)])
    audit = Audit(store)

    @api.get(
        "/keys", summary="Keys with their usage", response_model=KeyList,
        responses=_errors(400, 401, 403, 503), openapi_extra=SECURITY,
        description="Every key (revoked ones too), oldest first, with its admin flag, "
        "balance and usage over the last `days` days. Secrets are never listed.",
    )  # fmt: skip
    def list_keys(days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
        usage: dict[str, list[KeyUsage]] = defaultdict(list)
        for row in store.key_usage(time.time() - days * 86400, 86400):
            usage[row.key_id].append(row)
        admins = store.admin_key_ids()
        keys = [_key_out(k, k.id in admins, usage[k.id]) for k in store.list_keys()]
        return {"data": keys, "days": days}

    @api.post(
        "/keys", summary="Create a key (its secret is shown once)", status_code=201,
        response_model=CreatedKey, responses=_errors(400, 401, 403, 503),
        openapi_extra=SECURITY,
        description="The answer holds the key's secret: it is not stored (only its hash) "
        "and no other call shows it again. Audited as `key.create`.",
    )  # fmt: skip
    def create_key(body: NewKey, actor: Actor) -> JSONResponse:
        key, secret = store.create_key(body.name, body.credits)
        if body.admin:
            store.set_admin(key.id, True)
        audit(actor, "key.create", key.id, name=key.name, credits=key.credits, admin=body.admin)
        out = CreatedKey(**_key_out(key, body.admin, []), secret=secret)
        return JSONResponse(
            out.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
        )

    @api.post(
        "/keys/{key}/revoke", summary="Revoke a key", response_model=AdminKey,
        responses=_errors(400, 401, 403, 404, 503), openapi_extra=SECURITY,
        description="The key stops working within `KINEMA_AUTH_CACHE_SECONDS` on every API "
        "process. Its generations stay. Audited as `key.revoke`.",
    )  # fmt: skip
    def revoke_key(key: KeyRef, actor: Actor) -> dict[str, Any]:
        revoked = store.revoke_key(key)
        if revoked is None:
            raise NotFound(f"No active key matches '{key}'.")
        audit(actor, "key.revoke", revoked.id, name=revoked.name)
        return _key_out(revoked, store.is_admin(revoked.id), [])

    @api.post(
        "/keys/{key}/credit", summary="Change a key's balance", response_model=AdminKey,
        responses=_errors(400, 401, 403, 404, 409, 503), openapi_extra=SECURITY,
        description="`{\"add\": N}` adds N credits (2,000,000 = $1; negative takes some "
        "back); `{\"unlimited\": true}` makes the balance unlimited. Audited as `key.credit`.",
    )  # fmt: skip
    def credit_key(key: KeyRef, body: CreditChange, actor: Actor) -> dict[str, Any]:
        add = body.add if isinstance(body, AddCredits) else None
        found = next((k for k in store.list_keys() if key in (k.id, k.prefix[:10])), None)
        if found is None:
            raise NotFound(f"No key matches '{key}'.")
        if add is not None and found.credits is not None:
            balance = found.credits + add
            if not 0 <= balance <= MAX_CREDITS:
                raise Conflict(
                    f"Key '{found.id}' has {found.credits} credits: adding {add} would make "
                    f"{balance}, outside 0-{MAX_CREDITS}."
                )
        changed = store.add_credits(found.id, add)
        if changed is None:
            raise NotFound(f"No key matches '{key}'.")
        audit(
            actor, "key.credit", changed.id, add=add, unlimited=add is None,
            balance=changed.credits,
        )  # fmt: skip
        return _key_out(changed, store.is_admin(changed.id), [])

    @api.get(
        "/usage", summary="Usage over time, per key", response_model=UsageSeries,
        responses=_errors(400, 401, 403, 503), openapi_extra=SECURITY,
        description="Generations submitted (by submit time), completed and failed, seconds "
        "rendered and credits charged (by finish time), per key and hour or day (UTC).",
    )  # fmt: skip
    def usage(
        days: Annotated[int, Query(ge=1, le=366)] = 7,
        bucket: Annotated[Literal["hour", "day"], Query()] = "day",
        key_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        seconds = 3600 if bucket == "hour" else 86400
        now = time.time()
        since = (now - days * 86400) // seconds * seconds
        rows = store.key_usage(since, seconds, key_id)
        data = [
            {
                "key_id": r.key_id, "start": _time(r.start), "jobs": r.jobs,
                "completed": r.completed, "failed": r.failed, "seconds_rendered": r.seconds,
                "credits_used": r.credits,
            }
            for r in rows
        ]  # fmt: skip
        return {"since": _time(since), "bucket_seconds": seconds, "data": data}

    @api.get(
        "/queue", summary="Queue depth per model", response_model=QueueReport,
        responses=_errors(401, 403, 503), openapi_extra=SECURITY,
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
        responses=_errors(401, 403, 503), openapi_extra=SECURITY,
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
                "jobs_done": w.jobs_done, "started_at": _time(w.started_at),
                "last_seen": _time(w.last_seen),
            })  # fmt: skip
        return {"data": data, "live_seconds": LIVE_SECONDS}

    @api.get(
        "/engines", summary="Engines (backends) and their health", response_model=EngineList,
        responses=_errors(401, 403, 503), openapi_extra=SECURITY,
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
        responses=_errors(400, 401, 403, 503), openapi_extra=SECURITY,
    )  # fmt: skip
    def failures(hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24) -> dict[str, Any]:
        since = time.time() - hours * 3600
        data = [
            {"name": f.name, "count": f.count, "last_at": _time(f.last_at),
             "last_message": f.last_message, "last_model": f.last_model}
            for f in store.recent_failures(since)
        ]  # fmt: skip
        return {"since": _time(since), "data": data}

    @api.get(
        "/audit", summary="The audit log of admin actions", response_model=AuditList,
        responses=_errors(400, 401, 403, 503), openapi_extra=SECURITY,
    )  # fmt: skip
    def audit_log(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        data = [
            {"id": e.id, "at": _time(e.at), "actor": e.actor, "action": e.action,
             "target": e.target, "detail": e.detail}
            for e in store.audit_log(limit)
        ]  # fmt: skip
        return {"data": data}

    return api
