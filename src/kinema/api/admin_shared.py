"""What the admin route modules share (`api/admin.py` assembles the router): the
documented error answers, the key path parameter, the acting admin key and the audit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from kinema.dialects.aimlapi_models import ErrorEnvelope
from kinema.store import ApiKey, JobStore

log = logging.getLogger("kinema.admin")

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


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope, "description": ERRORS[code]} for code in codes}


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


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
