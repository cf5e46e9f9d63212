"""The durable submit -> record -> wait -> mirror sequence every provider kind shares.

- Durability: before sending a submit, the job row records `phase: "submitting"` with an
  idempotency key; once the provider accepts, it records `phase: "accepted"` and the
  provider's job id. A worker that finds `accepted` resumes polling that job; one that
  finds `submitting` (a crash between sending and recording) re-sends with the same
  idempotency key where the provider honours one, and otherwise fails the job with
  `UpstreamOutcomeUnknown`: never a silent second paid job.
- Retries: 429 (honouring `Retry-After`), 5xx and connection failures are retried with
  backoff; a submit is re-sent only when it surely did not reach the provider (refused
  connection, 429/5xx answer) or the provider is idempotent.
- Waiting: the first poll comes one interval after the submit (a job just accepted is not
  done; a resumed one is polled at once: it may have finished while no one watched);
  then at the provider's recommended interval, or when its `Retry-After` says (on any
  answer), stretched on long waits (see `next_pause`). A pause ends early when the job
  must stop (`Hooks.wakeup`), so a cancellation reaches the provider promptly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx

from kinema.errors import Cancelled, JobFailure
from kinema.providers.base import ACCEPTED, SUBMITTING, Done, Hooks, Provider
from kinema.providers.errors import (
    ADVISED_WAIT,
    Retryable,
    outcome_unknown,
    timed_out,
    unavailable,
)
from kinema.providers.mirror import MAX_BACKOFF_SECONDS, backoff_seconds, mirror
from kinema.render_request import RenderRequest

log = logging.getLogger("kinema.providers")

MIN_PAUSE_SECONDS = 0.1  # a provider answering "Retry-After: 0" each time: <= 10 polls/s
MAX_ADVISED_SECONDS = 300.0  # a provider's Retry-After beyond this is not waited out in one go
LATE_FRACTION = 0.05  # a job waited on for T s is polled about every max(interval, 5 % of T)
MAX_STRETCH = 4.0  # ... but never less often than every 4 intervals
JITTER = 0.1  # +-10 %: jobs submitted together do not poll in lockstep


def next_pause(interval: float, waited: float, advised: float | None) -> float:
    """Seconds until the next poll. The provider's own advice (`Retry-After`) wins.
    Otherwise its recommended interval, stretched for long waits: a job already waited
    on for 10 minutes is unlikely to finish in the next 2 s, and polling it every
    `LATE_FRACTION` of its age adds at most that fraction to its latency while hundreds
    of long jobs cost a few polls a second."""
    if advised is not None:
        return min(MAX_ADVISED_SECONDS, max(MIN_PAUSE_SECONDS, advised))
    stretched = min(interval * MAX_STRETCH, max(interval, waited * LATE_FRACTION))
    return stretched * random.uniform(1 - JITTER, 1 + JITTER)


async def pause(hooks: Hooks, seconds: float) -> None:
    """Sleep `seconds`, or less when the job must stop (its `wakeup` is set)."""
    if seconds <= 0:
        return
    if hooks.wakeup is None:
        await asyncio.sleep(seconds)
        return
    try:
        async with asyncio.timeout(seconds):
            await hooks.wakeup.wait()
    except TimeoutError:
        pass


def _interval(provider: Provider) -> float:
    return provider.options.poll_seconds or provider.poll_seconds


async def render(
    provider: Provider, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks
) -> Done:
    """Submit (or resume), wait, and mirror the result into `hooks.output_path`."""
    name = provider.name
    state = hooks.state if hooks.state and hooks.state.get("backend") == name else None
    first: float | None = None  # a resumed job is polled at once
    if state is None or state.get("phase") != ACCEPTED:
        if state is not None and state.get("phase") == SUBMITTING and not provider.safe_to_resend:
            raise outcome_unknown(name)
        key = (state or {}).get("key") or f"kinema-{hooks.job_id}-{name}"
        await hooks.record({"backend": name, "phase": SUBMITTING, "key": key})
        accepted = await _submit(provider, http, request, hooks, key)
        # The submit answer's Retry-After, else one interval; none after a create that
        # the provider held open until done or nearly (replicate's `Prefer: wait`).
        advised = ADVISED_WAIT.get()
        if provider.options.wait_seconds == 0:
            first = next_pause(_interval(provider), 0.0, advised)
        state = {"backend": name, "phase": ACCEPTED, "key": key, **accepted}
        await hooks.record(state)
        log.info("job %s: accepted by upstream %s as %s", hooks.job_id, name, state["id"])
    else:
        log.info("job %s: resuming upstream %s job %s", hooks.job_id, name, state["id"])
    done = await wait(provider, http, state, hooks, first)
    return await mirror(
        provider, http, state, done, hooks, lambda: wait(provider, http, state, hooks, None)
    )


async def _submit(
    provider: Provider, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, key: str
) -> dict[str, Any]:
    attempts = provider.options.submit_attempts
    for attempt in range(attempts):
        if hooks.cancelled():
            raise Cancelled()
        try:
            return await provider.submit(http, request, hooks, key)
        except Retryable as exc:
            log.warning(
                "job %s: upstream %s submit attempt %d failed: %s",
                hooks.job_id, provider.name, attempt + 1, exc.why,
            )  # fmt: skip
            if exc.sent and not provider.safe_to_resend:
                raise outcome_unknown(provider.name) from None
            if attempt == attempts - 1:
                raise unavailable(provider.name, exc.why) from None
            await pause(hooks, backoff_seconds(attempt, exc.retry_after))
    raise unavailable(provider.name, "no attempt left")  # pragma: no cover


async def wait(
    provider: Provider,
    http: httpx.AsyncClient,
    state: dict[str, Any],
    hooks: Hooks,
    first: float | None = None,
) -> Done:
    """Poll until the provider says done (after `first` seconds; None: at once)."""
    interval = _interval(provider)
    started = time.monotonic()
    deadline = started + provider.options.max_wait_seconds
    failures = 0
    delay = first
    while True:
        if delay is not None:
            await pause(hooks, min(delay, max(0.0, deadline - time.monotonic()) + 0.001))
        if hooks.cancelled():
            try:
                await provider.cancel(http, state)
            except (Retryable, JobFailure, httpx.HTTPError):
                log.info("job %s: upstream cancel failed (ignored)", hooks.job_id)
            raise Cancelled()
        if time.monotonic() > deadline:
            raise timed_out(provider.name, provider.options.max_wait_seconds)
        try:
            await provider.polls.take()
            result = await provider.poll(http, state)
        except Retryable as exc:
            failures += 1
            log.info("job %s: upstream poll failed (%s); retrying", hooks.job_id, exc.why)
            delay = (
                exc.retry_after
                if exc.retry_after is not None
                else min(MAX_BACKOFF_SECONDS, interval * 2 ** min(failures, 5))
            )
            continue
        failures = 0
        if isinstance(result, Done):
            return result
        if result.progress is not None:
            hooks.progress(result.progress)
        advised = result.retry_after if result.retry_after is not None else ADVISED_WAIT.get()
        delay = next_pause(interval, time.monotonic() - started, advised)
