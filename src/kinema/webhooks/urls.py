"""Where webhooks may go: https (plain http only where KINEMA_ALLOW_PRIVATE_URLS is on,
for development) and never into the operator's network, by the same SSRF policy as media
inputs (`kinema.inputs`, `kinema.netpolicy`). This is the submit-time check, without DNS;
the dispatcher resolves the name at each attempt, checks every address and connects to
the one it checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kinema.errors import FieldProblem, InputError, ValidationFailed
from kinema.inputs import FetchPolicy, check_url, shorten_url

if TYPE_CHECKING:
    from kinema.settings import Settings

FIELD = "webhook_url"
MAX_URL_LENGTH = 2048
EXPECTED = "an https URL of a public host"


def webhook_url_problem(url: str, policy: FetchPolicy, field: str = FIELD) -> str | None:
    """Why `url` cannot receive webhooks under `policy`, or None when it can."""
    if not url:
        return "Required: the URL to POST the generation's events to"
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme != "https" and not (scheme == "http" and policy.allow_private):
        return (
            "must be an https URL (plain http is accepted only where "
            "KINEMA_ALLOW_PRIVATE_URLS is on, for development)"
        )
    try:
        check_url(url, field, policy)
    except InputError as exc:
        return exc.reason.replace("does not fetch from", "does not send webhooks to")
    return None


def check_webhook_url(url: str, settings: Settings, field: str = FIELD) -> None:
    """Refuse a webhook destination with a 400 naming `field` (default `webhook_url`):
    not https (http only with allow_private_urls), malformed, with user info, or pointing
    at a private, loopback, link-local or metadata address or a local name, unless the
    operator allows it (`allow_private_urls`, `url_allowlist`)."""
    problem = webhook_url_problem(url, FetchPolicy.from_settings(settings), field)
    if problem is not None:
        received = shorten_url(url) if url else None
        raise ValidationFailed([FieldProblem(field, problem, EXPECTED, received)])
