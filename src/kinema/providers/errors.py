"""How upstream answers become Kinema's errors: the job-ending `UpstreamError`s (each
with its own name, never carrying the key), the transient `Retryable`, and the helpers
that read a provider's answer (`Retry-After`, JSON bodies, error shapes)."""

from __future__ import annotations

import contextvars
import email.utils
import json
import time
from typing import Any

import httpx

from kinema.errors import JobFailure

QUOTA_WORDS = ("quota", "insufficient", "billing", "credit", "balance", "payment")

# The `Retry-After` of the latest successful answer sent by this asyncio task (None: the
# answer had none). A provider may say when to ask again on any answer (RFC 9110 allows
# it beyond 429/503, and queue APIs send it with "still running"); `Provider.send` notes
# it here so the waiting loop honours it for every provider kind, without each kind's
# `poll` having to pass it on. A context variable: each job's task sees only its own.
ADVISED_WAIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kinema_upstream_advised_wait", default=None
)


class Retryable(Exception):
    """A transient failure: retry after `retry_after` (or backoff). `sent` is False only
    when the request surely never reached the provider."""

    def __init__(self, why: str, retry_after: float | None = None, sent: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after
        self.sent = sent


class ResultExpired(Exception):
    """The result URL answered 403/404/410: ask the provider for a fresh one."""


class UpstreamError(JobFailure):
    pass


def rejected(backend: str, field_name: str | None, message: str) -> UpstreamError:
    where = f"field '{field_name}'" if field_name else "the request"
    return UpstreamError(
        f"The upstream provider '{backend}' refused {where}: {message}", "UpstreamRejected"
    )


def auth_failed(backend: str, status: int) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' refused Kinema's credentials (HTTP {status}); "
        "the operator must check that upstream's API key.",
        "UpstreamAuth",
    )


def quota_exhausted(backend: str, status: int) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' refused the job for billing or quota reasons "
        f"(HTTP {status}); the operator must check that upstream account.",
        "UpstreamQuota",
    )


def generation_failed(backend: str, message: str) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' failed the generation: {message}", "UpstreamFailed"
    )


def job_lost(backend: str, upstream_id: str) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' no longer knows its job {upstream_id}; "
        "the generation is lost.",
        "UpstreamJobLost",
    )


def timed_out(backend: str, seconds: float) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' did not finish within {seconds:g} s.",
        "UpstreamTimedOut",
    )


def outcome_unknown(backend: str) -> UpstreamError:
    return UpstreamError(
        f"The submit to upstream provider '{backend}' was interrupted after it was sent, "
        "and that provider offers no way to find out whether it was accepted; to avoid "
        "paying twice it was not re-sent. The upstream outcome is unknown.",
        "UpstreamOutcomeUnknown",
    )


def unavailable(backend: str, why: str) -> UpstreamError:
    return UpstreamError(
        f"The upstream provider '{backend}' could not be reached or refused the job "
        f"before accepting it ({why}).",
        "UpstreamUnavailable",
    )


def retry_after(response: httpx.Response) -> float | None:
    """The answer's `Retry-After` in seconds (delta-seconds, decimals accepted, or an
    HTTP date); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def body_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Retryable(f"malformed JSON from the provider (HTTP {response.status_code})") from None


def problem_of(data: Any) -> tuple[str | None, str]:
    """(field, message) from a provider's error body, whatever its shape."""
    field_name: str | None = None
    message = ""
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, str):
            return None, inner[:500]
        if isinstance(inner, dict):
            for key in ("param", "field", "loc"):
                if inner.get(key):
                    value = inner[key]
                    field_name = (
                        ".".join(map(str, value)) if isinstance(value, list) else str(value)
                    )
                    break
            text = inner.get("message") or inner.get("msg") or inner.get("detail")
            message = text if isinstance(text, str) else ""
        for key in ("details", "detail", "errors", "invalid_fields"):
            items = data.get(key)
            if isinstance(items, list) and items and isinstance(items[0], dict):
                first = items[0]
                where = first.get("field") or first.get("loc") or first.get("param")
                if isinstance(where, list) and where[:1] == ["body"]:  # FastAPI-style loc
                    where = where[1:]
                if where and field_name is None:
                    field_name = (
                        ".".join(map(str, where)) if isinstance(where, list) else str(where)
                    )
                text = first.get("message") or first.get("msg") or first.get("description")
                if text and str(text) not in message:  # the field's reason, after a
                    message = f"{message}: {text}" if message else str(text)  # generic one
            elif isinstance(items, str):
                message = message or items
        message = message or str(data.get("message") or "")
    return field_name, (message or "no reason given")[:500]
