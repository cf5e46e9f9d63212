"""Standard Webhooks signatures (https://www.standardwebhooks.com), made with the official
`standardwebhooks` package so any of its verifiers accepts them:

    webhook-id: msg_…            the same on every retry of one event
    webhook-timestamp: 1718…     UNIX seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

keyed with the base64-decoded part of a `whsec_…` secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from kinema.store.webhooks import new_secret

__all__ = ["encode", "new_secret", "sign", "signed_headers"]


def encode(payload: Any) -> str:
    """The body that is signed and sent: compact JSON, UTF-8 kept as is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 signature>` of one attempt."""
    return Webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body)


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
