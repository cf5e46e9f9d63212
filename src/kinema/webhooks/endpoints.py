"""Per-key webhook configuration, shared by the API (`/v2/webhooks/…`) and the CLI
(`kinema webhooks …`): the key's own signing secret for per-request `webhook_url`s, and
its default endpoints, each with its own secret and choice of events."""

from __future__ import annotations

from collections.abc import Iterable

from kinema.errors import FieldProblem, ValidationFailed
from kinema.settings import Settings
from kinema.store import WebhookStore
from kinema.store.webhooks import ALL_EVENTS, DEFAULT_EVENTS, WebhookEndpoint
from kinema.webhooks.urls import check_webhook_url

MAX_ENDPOINTS_PER_KEY = 20
_PREFIX = "generation."


def parse_events(values: Iterable[str] | None, field: str = "events") -> list[str]:
    """Event names, also short (`completed`) or comma-separated, in a fixed order; an
    empty choice means the default events (completed, failed, cancelled)."""
    chosen: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            full = name if name.startswith(_PREFIX) else _PREFIX + name
            if full not in ALL_EVENTS:
                raise ValidationFailed(
                    [FieldProblem(field, f"unknown event '{part.strip()[:60]}'",
                                  "any of " + ", ".join(ALL_EVENTS))]
                )  # fmt: skip
            chosen.add(full)
    return [event for event in ALL_EVENTS if event in chosen]


def events_of(endpoint: WebhookEndpoint) -> list[str]:
    """The events an endpoint receives (an empty choice is the default events)."""
    return list(endpoint.events) or list(DEFAULT_EVENTS)


def add_endpoint(
    store: WebhookStore,
    settings: Settings,
    key_id: str,
    url: str,
    events: Iterable[str] | None = None,
) -> WebhookEndpoint:
    """Validate and add a default endpoint for `key_id` (400s name `url` or `events`)."""
    check_webhook_url(url, settings, field="url")
    chosen = parse_events(events)
    if len(store.webhook_endpoints(key_id)) >= MAX_ENDPOINTS_PER_KEY:
        raise ValidationFailed(
            [FieldProblem("url", f"this key already has {MAX_ENDPOINTS_PER_KEY} webhook "
                          "endpoints; remove one first")]
        )  # fmt: skip
    return store.add_webhook_endpoint(key_id, url, chosen)
