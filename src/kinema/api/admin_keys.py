"""The admin API's keys (create, shown once; list with usage; revoke; credit) and their
usage over time (`api/admin.py` assembles the router)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from kinema.api.admin_models import (
    MAX_CREDITS,
    AddCredits,
    AdminKey,
    CreatedKey,
    CreditChange,
    KeyList,
    NewKey,
    UsageSeries,
    UsageTotals,
)
from kinema.api.admin_shared import SECURITY, Actor, Audit, KeyRef, error_responses, utc
from kinema.errors import Conflict, NotFound
from kinema.store import ApiKey, JobStore
from kinema.store.admin import KeyUsage


def _totals(rows: list[KeyUsage]) -> UsageTotals:
    return UsageTotals(
        jobs=sum(r.jobs for r in rows), completed=sum(r.completed for r in rows),
        failed=sum(r.failed for r in rows), seconds_rendered=round(sum(r.seconds for r in rows), 3),
        credits_used=sum(r.credits for r in rows),
    )  # fmt: skip


def _key_out(key: ApiKey, admin: bool, usage: list[KeyUsage]) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "admin": admin,
        "credits": key.credits, "created_at": utc(key.created_at),
        "revoked_at": utc(key.revoked_at), "usage": _totals(usage),
    }  # fmt: skip


def add_key_routes(api: APIRouter, store: JobStore, audit: Audit) -> None:
    @api.get(
        "/keys", summary="Keys with their usage", response_model=KeyList,
        responses=error_responses(400, 401, 403, 503), openapi_extra=SECURITY,
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
        response_model=CreatedKey, responses=error_responses(400, 401, 403, 503),
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
        responses=error_responses(400, 401, 403, 404, 503), openapi_extra=SECURITY,
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
        responses=error_responses(400, 401, 403, 404, 409, 503), openapi_extra=SECURITY,
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
        responses=error_responses(400, 401, 403, 503), openapi_extra=SECURITY,
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
                "key_id": r.key_id, "start": utc(r.start), "jobs": r.jobs,
                "completed": r.completed, "failed": r.failed, "seconds_rendered": r.seconds,
                "credits_used": r.credits,
            }
            for r in rows
        ]  # fmt: skip
        return {"since": utc(since), "bucket_seconds": seconds, "data": data}
