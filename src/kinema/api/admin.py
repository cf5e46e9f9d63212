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

The routes are in `admin_keys.py` (keys, usage) and `admin_health.py` (queue, workers,
engines, failures), their bodies in `admin_models.py`, what they share in
`admin_shared.py`; this module assembles the router and serves the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from kinema.api.admin_health import (
    HEALTH_WINDOW,
    LIVE_SECONDS,
    add_health_routes,
    engine_device,
    engine_kind,
)
from kinema.api.admin_keys import add_key_routes
from kinema.api.admin_models import (
    MAX_CREDITS,
    AddCredits,
    AdminKey,
    AuditList,
    AuditOut,
    CreatedKey,
    CreditChange,
    EngineHealth,
    EngineList,
    FailureList,
    FailureOut,
    KeyList,
    MakeUnlimited,
    NewKey,
    QueueDepth,
    QueueReport,
    UsagePoint,
    UsageSeries,
    UsageTotals,
    WorkerList,
    WorkerOut,
)
from kinema.api.admin_shared import (
    ERRORS,
    SECURITY,
    Actor,
    Audit,
    KeyRef,
    current_admin,
    error_responses,
    log,
    utc,
)
from kinema.api.auth import Authenticator
from kinema.engines import EngineSet
from kinema.store import JobStore

# What this module offered before its split (api/app.py imports `router` from here).
__all__ = [
    "ERRORS",
    "FORBIDDEN",
    "HEALTH_WINDOW",
    "LIVE_SECONDS",
    "MAX_CREDITS",
    "PREFIX",
    "SECURITY",
    "Actor",
    "AddCredits",
    "AdminKey",
    "Audit",
    "AuditList",
    "AuditOut",
    "CreatedKey",
    "CreditChange",
    "EngineHealth",
    "EngineList",
    "FailureList",
    "FailureOut",
    "KeyList",
    "KeyRef",
    "MakeUnlimited",
    "NewKey",
    "QueueDepth",
    "QueueReport",
    "UsagePoint",
    "UsageSeries",
    "UsageTotals",
    "WorkerList",
    "WorkerOut",
    "current_admin",
    "engine_device",
    "engine_kind",
    "log",
    "router",
]

PREFIX = "/v2/admin"
FORBIDDEN = (
    "This endpoint needs an admin key. Create one on the server with "
    "`kinema keys create --name NAME --admin`."
)


def router(store: JobStore, auth: Authenticator, engines: EngineSet) -> APIRouter:
    def require_admin(request: Request) -> None:
        key = auth(request)
        if not store.is_admin(key.id):
            raise HTTPException(403, FORBIDDEN)
        request.state.admin_key = key

    api = APIRouter(prefix=PREFIX, tags=["Admin"], dependencies=[Depends(require_admin)])
    audit = Audit(store)
    add_key_routes(api, store, audit)
    add_health_routes(api, store, engines)

    @api.get(
        "/audit", summary="The audit log of admin actions", response_model=AuditList,
        responses=error_responses(400, 401, 403, 503), openapi_extra=SECURITY,
    )  # fmt: skip
    def audit_log(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        data = [
            {"id": e.id, "at": utc(e.at), "actor": e.actor, "action": e.action,
             "target": e.target, "detail": e.detail}
            for e in store.audit_log(limit)
        ]  # fmt: skip
        return {"data": data}

    return api
