"""Webhook routes: the key's signing secret, its default endpoints, and the deliveries
(attempts, redelivery) of a generation's events. The events themselves are documented
under `webhooks` in /openapi.json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kinema.api.auth import Authenticator
from kinema.dialects.aimlapi import ErrorEnvelope, Generation
from kinema.errors import NotFound
from kinema.settings import Settings
from kinema.store import ApiKey, JobStore
from kinema.store.webhooks import ALL_EVENTS, WebhookDelivery, WebhookEndpoint
from kinema.webhooks.endpoints import add_endpoint, events_of

SECURITY: dict[str, Any] = {"security": [{"bearer": []}]}
ERRORS = {
    400: "Invalid request; `details` names each refused field.",
    401: "Missing, invalid or revoked API key.",
    404: "No such generation or endpoint (or another key's).",
    503: "The job store is unreachable; retry later.",
}
GENERATION_ID = Query(min_length=1, max_length=200, description="The id the submit call returned.")
EventName = Literal[
    "generation.completed", "generation.failed", "generation.cancelled", "generation.started",
    "generation.progress",
]  # fmt: skip
assert set(get_args(EventName)) == set(ALL_EVENTS)
# What a request may name: the full event names or their short forms (`completed`...).
EventInput = Literal[
    "generation.completed", "generation.failed", "generation.cancelled", "generation.started",
    "generation.progress", "completed", "failed", "cancelled", "started", "progress",
]  # fmt: skip


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope, "description": ERRORS[code]} for code in codes}


def _time(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


# ---------------------------------------------------------------------- models
class WebhookSecret(BaseModel):
    secret: str = Field(
        description="`whsec_…`: verifies the signatures of webhooks sent to the `webhook_url`s "
        "of this key's submits (Standard Webhooks)."
    )


class NewWebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8,
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+",
        description="https URL that receives the events (POST, JSON); http only where "
        "KINEMA_ALLOW_PRIVATE_URLS is on. Refused (400) if it points at a private address.",
    )
    events: list[EventInput] = Field(
        default_factory=list,
        description="Events to send (`generation.completed`, `.failed`, `.cancelled`, and the "
        "opt-in `.started`, `.progress`; the short forms `completed`… work too). Empty: "
        "completed, failed and cancelled.",
    )


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    events: list[EventName]
    secret: str = Field(description="`whsec_…`: verifies this endpoint's webhooks.")
    created_at: datetime


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]


class DeletedWebhookEndpoint(BaseModel):
    id: str
    deleted: bool


class WebhookAttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first try, then one more per retry.")
    status_code: int | None = Field(description="The receiver's HTTP status (None: no answer).")
    error: str | None = Field(description="Why no answer came (timeout, refused, TLS...).")
    latency_ms: float
    at: datetime


class WebhookDeliveryOut(BaseModel):
    webhook_id: str = Field(description="The `webhook-id` header: the same on every retry.")
    event: EventName
    url: str
    endpoint_id: str | None = Field(
        description="The key's endpoint it went to; None: the submit's own `webhook_url`."
    )
    status: Literal["pending", "delivered", "failed"]
    attempts: list[WebhookAttemptOut]
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveries(BaseModel):
    generation_id: str
    data: list[WebhookDeliveryOut]


class WebhookEvent(BaseModel):
    """The body of every webhook. Headers: `webhook-id` (the same on every retry: dedupe on
    it), `webhook-timestamp` (UNIX seconds of the attempt) and `webhook-signature`
    (`v1,<base64 HMAC-SHA256>` per Standard Webhooks, keyed with the `whsec_` secret of
    the endpoint, or of the API key for a submit's `webhook_url`). Answer 2xx within
    10 s; anything else is retried with backoff for over 24 h."""

    type: EventName
    timestamp: str = Field(description="When the event happened (ISO 8601, UTC).")
    data: Generation = Field(
        description="The generation as a poll showed it when the event was first sent "
        "(its video URL expires; poll again for a fresh one)."
    )


def _endpoint(endpoint: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut(
        id=endpoint.id, url=endpoint.url, events=events_of(endpoint),
        secret=endpoint.secret, created_at=datetime.fromtimestamp(endpoint.created_at, UTC),
    )  # fmt: skip


def _delivery(delivery: WebhookDelivery) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        webhook_id=delivery.webhook_id, event=delivery.event,
        url=delivery.url, endpoint_id=delivery.endpoint_id,
        status=delivery.status,
        attempts=[
            WebhookAttemptOut(
                attempt=a.attempt, status_code=a.status_code, error=a.error,
                latency_ms=round(a.latency_ms, 2), at=datetime.fromtimestamp(a.at, UTC),
            )
            for a in delivery.attempts
        ],
        next_attempt_at=_time(delivery.next_attempt_at) if delivery.status == "pending" else None,
        created_at=datetime.fromtimestamp(delivery.created_at, UTC),
        delivered_at=_time(delivery.delivered_at),
    )  # fmt: skip


# ---------------------------------------------------------------------- routes
def router(store: JobStore, auth: Authenticator, settings: Settings) -> APIRouter:
    api = APIRouter(tags=["Webhooks"])

    async def key_of(request: Request) -> ApiKey:
        return await run_in_threadpool(auth, request)

    async def deliveries(generation_id: str, key: ApiKey) -> WebhookDeliveries:
        found = await run_in_threadpool(store.webhook_deliveries, generation_id, key.id)
        return WebhookDeliveries(generation_id=generation_id, data=[_delivery(d) for d in found])

    async def owned(generation_id: str, key: ApiKey) -> None:
        if await run_in_threadpool(store.get_status, generation_id, key.id) is None:
            raise NotFound(f"Generation '{generation_id}' was not found.")

    @api.get(
        "/v2/webhooks/secret", response_model=WebhookSecret, openapi_extra=SECURITY,
        summary="The key's secret for verifying webhooks sent to submits' webhook_url",
        responses=_errors(401, 503),
    )  # fmt: skip
    async def webhook_secret(request: Request) -> WebhookSecret:
        key = await key_of(request)
        return WebhookSecret(secret=await run_in_threadpool(store.webhook_secret, key.id))

    @api.post(
        "/v2/webhooks/endpoints", response_model=WebhookEndpointOut, status_code=201,
        openapi_extra=SECURITY, summary="Add a default webhook endpoint for this key",
        responses=_errors(400, 401, 503),
    )  # fmt: skip
    async def create_endpoint(request: Request, body: NewWebhookEndpoint) -> WebhookEndpointOut:
        key = await key_of(request)
        endpoint = await run_in_threadpool(
            add_endpoint, store, settings, key.id, body.url, body.events
        )
        return _endpoint(endpoint)

    @api.get(
        "/v2/webhooks/endpoints", response_model=WebhookEndpointList, openapi_extra=SECURITY,
        summary="This key's webhook endpoints", responses=_errors(401, 503),
    )  # fmt: skip
    async def list_endpoints(request: Request) -> WebhookEndpointList:
        key = await key_of(request)
        found = await run_in_threadpool(store.webhook_endpoints, key.id)
        return WebhookEndpointList(data=[_endpoint(e) for e in found])

    @api.delete(
        "/v2/webhooks/endpoints", response_model=DeletedWebhookEndpoint, openapi_extra=SECURITY,
        summary="Remove one of this key's webhook endpoints",
        responses=_errors(400, 401, 404, 503),
    )  # fmt: skip
    async def delete_endpoint(
        request: Request, endpoint_id: str = Query(min_length=1, max_length=64)
    ) -> DeletedWebhookEndpoint:
        key = await key_of(request)
        removed = await run_in_threadpool(store.remove_webhook_endpoint, endpoint_id, key.id)
        if removed is None:
            raise NotFound(f"Webhook endpoint '{endpoint_id}' was not found.")
        return DeletedWebhookEndpoint(id=removed.id, deleted=True)

    @api.get(
        "/v2/video/generations/webhooks", response_model=WebhookDeliveries,
        openapi_extra=SECURITY, summary="A generation's webhook deliveries and their attempts",
        responses=_errors(400, 401, 404, 503),
    )  # fmt: skip
    async def list_deliveries(
        request: Request, generation_id: str = GENERATION_ID
    ) -> WebhookDeliveries:
        key = await key_of(request)
        await owned(generation_id, key)
        return await deliveries(generation_id, key)

    @api.post(
        "/v2/video/generations/webhooks/redeliver", response_model=WebhookDeliveries,
        status_code=202, openapi_extra=SECURITY,
        summary="Send a generation's webhooks again (same webhook-ids)",
        description="Every delivery of the generation is due again at once. A finished "
        "generation that had no webhook when it finished gets its final event queued to "
        "the key's current endpoints.",
        responses=_errors(400, 401, 404, 503),
    )  # fmt: skip
    async def redeliver(request: Request, generation_id: str = GENERATION_ID) -> WebhookDeliveries:
        key = await key_of(request)
        await owned(generation_id, key)
        await run_in_threadpool(store.redeliver_webhooks, generation_id, key.id)
        return await deliveries(generation_id, key)

    return api


def install(app: FastAPI, store: JobStore, auth: Authenticator, settings: Settings) -> None:
    """The routes, and the events documented as OpenAPI `webhooks` (after
    `kinema.api.openapi.install`, whose document this completes)."""
    app.include_router(router(store, auth, settings))
    for event in ALL_EVENTS:

        def receiver(body: WebhookEvent) -> None: ...

        app.webhooks.add_api_route(
            event, receiver, methods=["POST"], name=event, summary=f"{event} (Kinema POSTs it)",
            description=WebhookEvent.__doc__, status_code=200,
        )  # fmt: skip
    build = app.openapi

    def with_webhooks() -> dict[str, Any]:
        schema = build()
        if "webhooks" not in schema:
            events = get_openapi(
                title=app.title, version=app.version, routes=[], webhooks=app.webhooks.routes
            )
            schema["webhooks"] = events.get("webhooks", {})
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in events.get("components", {}).get("schemas", {}).items():
                components.setdefault(name, definition)
        return schema

    app.openapi = with_webhooks  # type: ignore[method-assign]
