"""Verifying Kinema's webhooks in a receiver (Standard Webhooks signatures, checked by
the official `standardwebhooks` package):

    from kinema.client.webhooks import WebhookVerificationFailed, verify_webhook

    @app.post("/kinema-hook")
    async def hook(request: Request) -> Response:
        try:
            event = verify_webhook(await request.body(), request.headers, SECRET)
        except WebhookVerificationFailed:
            return Response(status_code=400)
        if seen(request.headers["webhook-id"]):  # retries repeat the id: deduplicate
            return Response(status_code=204)
        handle(event["type"], event["data"])  # data: the generation, as a poll shows it
        return Response(status_code=204)

SECRET is the endpoint's `whsec_…` secret (`kinema webhooks add` / POST
/v2/webhooks/endpoints), or the API key's (`GET /v2/webhooks/secret`) for webhooks sent
to a submit's `webhook_url`. Verify the raw body, before any JSON parsing: re-encoding it
changes the bytes that were signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from kinema.client.errors import KinemaClientError

__all__ = ["WebhookVerificationFailed", "verify_webhook"]


class WebhookVerificationFailed(KinemaClientError):
    """The webhook is not Kinema's: a signature, timestamp (older or newer than 5
    minutes) or header that does not check out. Answer it with a 4xx and ignore it."""


def verify_webhook(payload: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The event (`{"type": …, "timestamp": …, "data": {…generation…}}`) once its
    `webhook-signature` is verified against `payload` (the raw body) with `secret`;
    WebhookVerificationFailed otherwise."""
    try:
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        event = Webhook(secret).verify(payload, dict(headers.items()))
    except (WebhookVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationFailed(f"webhook verification failed: {exc}") from None
    if not isinstance(event, dict):
        raise WebhookVerificationFailed("webhook verification failed: the body is not an event")
    return event
