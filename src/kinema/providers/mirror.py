"""Mirroring a finished upstream job: its video is streamed (httpx, async) into the job's
work dir under the upstream's size cap, retried on transient failures, with a fresh
result URL asked for when the signed one expired; what the provider says it charged is
recorded, and the provider's copy freed where it keeps one. The PyAV check and the copy
into Kinema's storage follow in the runner, on a thread (they are CPU and disk work)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from kinema.errors import JobFailure
from kinema.providers.errors import (
    ResultExpired,
    Retryable,
    generation_failed,
    unavailable,
)

if TYPE_CHECKING:
    from kinema.providers.base import Done, Hooks, Provider

log = logging.getLogger("kinema.providers")

MAX_BACKOFF_SECONDS = 30.0


def backoff_seconds(attempt: int, hint: float | None) -> float:
    """The provider's `Retry-After` when it sent one, else exponential (0.5 s doubling)."""
    return hint if hint is not None else min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt)


async def mirror(
    provider: Provider,
    http: httpx.AsyncClient,
    state: dict[str, Any],
    done: Done,
    hooks: Hooks,
    again: Callable[[], Awaitable[Done]],
) -> Done:
    """Stream `done`'s video into `hooks.output_path`; `again` polls for a fresh result
    (a new signed URL) once when the first one expired. Returns the Done that worked."""
    name = provider.name
    attempts = provider.options.submit_attempts
    for attempt in range(attempts + 1):
        try:
            await provider.download(http, state, done, hooks.output_path)
            break
        except ResultExpired:
            if attempt >= 1:
                raise generation_failed(
                    name, "its result URL expired and no fresh one came"
                ) from None
            done = await again()
        except Retryable as exc:
            if attempt == attempts:
                raise unavailable(name, f"download: {exc.why}") from None
            await asyncio.sleep(backoff_seconds(attempt, exc.retry_after))
    if done.cost is not None:  # what the provider says it charged, kept on the job row
        hooks.notes["cost"] = done.cost
        await hooks.record({**state, "cost": done.cost})
    try:
        await provider.cleanup(http, state)
    except (Retryable, JobFailure, httpx.HTTPError):
        log.info("job %s: upstream %s cleanup failed (ignored)", hooks.job_id, name)
    return done
