"""Kinema's extensions of the AI/ML API contract, documented in /openapi.json: the
headers and query parameters a submit takes (Idempotency-Key, deadlines, priority,
webhook_url, dry_run) and the routes beside the unified one (cancel, list, delete)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from kinema.dialects.aimlapi_models import (
    Deleted,
    Generation,
    GenerationList,
    Meta,
    QuoteResponse,
    Usage,
    _error_responses,
)
from kinema.errors import FieldProblem, NotFound, ValidationFailed
from kinema.jobs import lifecycle
from kinema.jobs.model import Status
from kinema.jobs.submission import Quote, SubmitOptions
from kinema.settings import Settings

if TYPE_CHECKING:
    from kinema.dialects.aimlapi import AimlApiDialect

PRIORITIES = {"low": 0, "normal": 1, "high": 2}
GenerationId = Annotated[str, Query(min_length=1, max_length=200)]
MAX_LIST = 100
UNIFIED = "/v2/video/generations"


def _problem(field: str, message: str, expected: str, received: Any = None) -> ValidationFailed:
    return ValidationFailed([FieldProblem(field, message, expected, received)])


def _seconds(request: Request, header: str) -> float | None:
    raw = request.headers.get(header)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 30 * 86400:
        raise _problem(header, "must be a number of seconds", "0 < seconds <= 2592000", raw[:100])
    return value


def submit_flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _problem(name, "must be true or false", "true | false", raw[:100])


def submit_options(request: Request, settings: Settings) -> SubmitOptions:
    """The submit's headers and query parameters, checked (a 400 names the bad one)."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise _problem("Idempotency-Key", "must be 1-255 characters", "1-255 characters")
    raw_priority = request.headers.get("x-kinema-priority")
    priority = PRIORITIES.get((raw_priority or "normal").strip().lower())
    if priority is None:
        raise _problem(
            "X-Kinema-Priority",
            "unknown priority",
            "low | normal | high",
            (raw_priority or "")[:100],
        )
    webhook_url = request.query_params.get("webhook_url")
    if webhook_url is not None:
        from kinema.webhooks import check_webhook_url

        check_webhook_url(webhook_url, settings)
    return SubmitOptions(
        idempotency_key=key,
        start_timeout=_seconds(request, "X-Kinema-Start-Timeout"),
        run_timeout=_seconds(request, "X-Kinema-Run-Timeout"),
        priority=priority,
        webhook_url=webhook_url,
    )


def quote_body(quote: Quote) -> dict[str, Any]:
    return QuoteResponse(
        status="quote", model=quote.spec.model, backend=quote.backend,
        capability=quote.capability, meta=Meta(usage=Usage(credits_used=quote.price)),
    ).model_dump(mode="json")  # fmt: skip


def _generation_id(generation_id: str) -> str:
    if not generation_id or len(generation_id) > 200:
        raise _problem(
            "generation_id", "Required: the id the submit call returned",
            "string of 1-200 characters", generation_id or None,
        )  # fmt: skip
    return generation_id


def lifecycle_router(dialect: AimlApiDialect) -> APIRouter:
    api = APIRouter(tags=["Video generations"])
    store, auth = dialect.submitter.store, dialect.auth

    def base_url(request: Request) -> str:
        return dialect.submitter.settings.public_url or str(request.base_url)

    def view(request: Request, job_id: str, key_id: str) -> dict[str, Any]:
        job = store.get_status(job_id, key_id)
        if job is None:
            raise NotFound(f"Generation '{job_id}' was not found.")
        return dialect.render_poll(job, dialect.storage, base_url(request), dialect.ttl)[1]

    @api.post(
        UNIFIED + "/cancel", summary="Cancel a generation", response_model=Generation,
        responses=_error_responses(400, 401, 404, 409, 503),
        description="A queued generation never starts; a running one is stopped (within a "
        "second on local engines) and its worker takes the next job. The poll then shows "
        "`status: error` with `error.name: Cancelled`; nothing is charged.",
    )  # fmt: skip
    def cancel(request: Request, generation_id: GenerationId) -> JSONResponse:
        key = auth(request)
        lifecycle.cancel(store, _generation_id(generation_id), key.id)
        return JSONResponse(view(request, generation_id, key.id))

    @api.get(
        UNIFIED + "/list", summary="List your generations", response_model=GenerationList,
        responses=_error_responses(400, 401, 503),
        description="Newest first; pass `next` back as `after` for the following page.",
    )  # fmt: skip
    def list_generations(
        request: Request,
        status: Annotated[Status | None, Query()] = None,
        model: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
        after: Annotated[str | None, Query(pattern=lifecycle.CURSOR_PATTERN)] = None,
    ) -> JSONResponse:
        key = auth(request)
        before = lifecycle.decode_cursor(after) if after else None
        page = store.list_jobs(
            key.id, limit=limit + 1, before_seq=before, status=status, model=model
        )
        more, page = len(page) > limit, page[:limit]
        base = base_url(request)
        data = [dialect.render_poll(job, dialect.storage, base, dialect.ttl)[1] for job in page]
        cursor = lifecycle.encode_cursor(page[-1].seq) if more and page else None
        return JSONResponse({"data": data, "next": cursor})

    @api.delete(
        UNIFIED, summary="Delete a generation", response_model=Deleted,
        responses=_error_responses(400, 401, 404, 503),
        description="Deletes the video (local or S3) and the stored inputs; the generation "
        "then answers 404 everywhere and its signed URLs stop working. A running one is "
        "stopped first.",
    )  # fmt: skip
    def delete(request: Request, generation_id: GenerationId) -> JSONResponse:
        key = auth(request)
        gone = lifecycle.delete_generation(
            store, dialect.storage, _generation_id(generation_id), key.id
        )
        if gone is None:
            raise NotFound(f"Generation '{generation_id}' was not found.")
        return JSONResponse({"id": gone.id, "deleted": True})

    return api
