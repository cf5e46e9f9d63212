"""What every upstream provider shares: its configuration, what a poll answers, and the
`Provider` base class (one request with the error mapping, the default download).

A provider kind (`aimlapi.py`, `openai.py`...) only speaks its wire: `submit` (returns
its job id), `poll` (Pending / Done, or raises a mapped failure), `download` and
`cancel`. Everything else is shared, once:

- `errors.py`: validation refusals name the field and the provider's message; auth and
  quota problems are operator-facing and never carry the key; timeouts, lost jobs and
  unknown outcomes have their own names; transient answers are `Retryable`.
- `sequence.py`: the durable submit -> record -> wait sequence (submit recorded before
  it is sent, the provider's id before Kinema waits, so a successor worker resumes the
  same upstream job and never pays twice), and the waiting schedule (the provider's
  recommended interval, `Retry-After`, backoff on long waits).
- `mirror.py`: the result streamed into the work dir under a size cap (the runner then
  checks it with PyAV in a thread and stores it), so clients only see Kinema's URLs.
- `fields.py`: the per-model field tables of the providers with their own schemas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from kinema.inputs import FetchPolicy

# Re-exported: the provider kinds import their vocabulary from this one module.
from kinema.providers.errors import ADVISED_WAIT
from kinema.providers.errors import QUOTA_WORDS as QUOTA_WORDS
from kinema.providers.errors import ResultExpired as ResultExpired
from kinema.providers.errors import Retryable as Retryable
from kinema.providers.errors import UpstreamError as UpstreamError
from kinema.providers.errors import auth_failed as auth_failed
from kinema.providers.errors import body_json as body_json
from kinema.providers.errors import generation_failed as generation_failed
from kinema.providers.errors import job_lost as job_lost
from kinema.providers.errors import outcome_unknown as outcome_unknown
from kinema.providers.errors import problem_of as problem_of
from kinema.providers.errors import quota_exhausted as quota_exhausted
from kinema.providers.errors import rejected as rejected
from kinema.providers.errors import retry_after as retry_after
from kinema.providers.errors import timed_out as timed_out
from kinema.providers.errors import unavailable as unavailable
from kinema.providers.fields import app_for as app_for
from kinema.providers.fields import mapped_input as mapped_input
from kinema.providers.fields import model_entry as model_entry
from kinema.providers.fields import request_value as request_value
from kinema.render_request import MediaRef, RenderRequest

log = logging.getLogger("kinema.providers")

SUBMITTING, ACCEPTED = "submitting", "accepted"


class UpstreamOptions(BaseModel):
    """One `KINEMA_UPSTREAMS` entry (the key's `api_key_env` is resolved before this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    base_url: str
    api_key: str | None = Field(default=None, repr=False)
    model: str | None = Field(
        default=None, description="The provider's model id for every job (openai kind)."
    )
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per Kinema model id: provider fields overriding the built-in mapping "
        '(e.g. {"video-01": {"model": "minimax/hailuo-02"}}).',
    )
    capabilities: list[str] | None = Field(
        default=None, description="Narrow the capabilities this upstream serves."
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    max_wait_seconds: float = Field(default=3600.0, gt=0)
    poll_seconds: float | None = Field(default=None, gt=0, description="Default: the kind's.")
    concurrency: int = Field(default=64, ge=1, description="Upstream jobs in flight at once.")
    max_polls_per_second: float | None = Field(
        default=None, gt=0,
        description="Cap on this upstream's status polls per worker process, all its jobs "
        "together: with hundreds waiting, each is polled less often (its poll lag grows) "
        "instead of the polls costing more CPU. Default: no cap.",
    )  # fmt: skip
    submit_attempts: int = Field(default=4, ge=1)
    max_output_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    idempotent: bool | None = Field(
        default=None, description="Override whether re-sending a submit is safe."
    )
    wait_seconds: int = Field(
        default=0, ge=0, le=60,
        description="replicate: hold the create open up to N s (`Prefer: wait=N`); 0: async.",
    )  # fmt: skip


# ---- what a poll answers ------------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    progress: float | None = None  # 0..1 when the provider reports it
    retry_after: float | None = None


@dataclass(frozen=True)
class Done:
    url: str | None = None  # where the video is (None: the provider's own content endpoint)
    cost: Any = None  # what the provider reports it charged


class PollBudget:
    """At most `rate` polls a second for all the jobs of one upstream in this process:
    each poll takes the next free slot (first come, first served). No rate: no wait."""

    def __init__(self, rate: float | None) -> None:
        self.gap = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0

    async def take(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)


# ---- the provider interface ---------------------------------------------------------------
@dataclass
class Hooks:
    """How the durable sequence reaches its job: record state in the job row, report
    progress, notice cancellation, fetch inputs, and where the video goes."""

    job_id: str
    output_path: Path
    record: Callable[[dict[str, Any]], Awaitable[None]]
    fetch: Callable[[MediaRef], Awaitable[bytes]]
    cancelled: Callable[[], bool] = lambda: False
    progress: Callable[[float], None] = lambda _fraction: None
    params: dict[str, Any] | None = None  # the request's wire body (Kinema's own dialect)
    state: dict[str, Any] | None = None  # what the job row recorded before (resume)
    notes: dict[str, Any] = field(default_factory=dict)
    # Set (on the loop) when the job must stop: a pause between polls ends at once, so a
    # cancellation reaches the provider without waiting out a long poll interval.
    wakeup: asyncio.Event | None = None


class Provider(ABC):
    """One provider kind's wire. Instances are per configured upstream."""

    # Whether result files on the provider's own host get the key (files on a CDN never do).
    key_on_downloads: ClassVar[bool] = True

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    poll_seconds: ClassVar[float] = 5.0  # the provider's recommended poll interval
    idempotent: ClassVar[bool] = False  # re-sending a submit with the same key is safe

    def __init__(self, name: str, options: UpstreamOptions) -> None:
        self.name = name
        self.options = options
        self.base_url = options.base_url.rstrip("/")
        # Where a result URL off the provider's own host may point (SSRF rules).
        self.policy = FetchPolicy()
        self.polls = PollBudget(options.max_polls_per_second)

    @property
    def safe_to_resend(self) -> bool:
        return self.options.idempotent if self.options.idempotent is not None else self.idempotent

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.options.api_key}"} if self.options.api_key else {}

    def overrides(self, model: str) -> dict[str, Any]:
        return dict(self.options.models.get(model, {}))

    def scrub(self, text: str) -> str:
        key = self.options.api_key
        return text.replace(key, "***") if key else text

    async def send(
        self, http: httpx.AsyncClient, method: str, url: str, **kw: Any
    ) -> httpx.Response:
        """One request, mapped: transient problems raise Retryable, auth/quota/validation
        raise the job's final error; other answers (2xx, 404...) are returned."""
        headers = {**self.auth_headers(), **kw.pop("headers", {})}
        ADVISED_WAIT.set(None)
        try:
            response = await http.request(
                method, url, headers=headers, timeout=self.options.request_timeout_seconds, **kw
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Retryable(f"connection refused: {type(exc).__name__}", sent=False) from None
        except httpx.TimeoutException as exc:
            raise Retryable(f"timed out: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            text = response.text[:300].lower()
            if status == 429 and any(word in text for word in QUOTA_WORDS):
                raise quota_exhausted(self.name, status)
            # 429/500/503 answer for the provider itself: it did not take the job. A 502/504
            # may come from a gateway after the provider took it: the outcome is unknown.
            sent = status not in (429, 500, 503)
            raise Retryable(f"HTTP {status}", retry_after(response), sent=sent)
        if status in (401, 403):
            raise auth_failed(self.name, status)
        if status == 402:
            raise quota_exhausted(self.name, status)
        if status in (400, 409, 413, 422):
            try:
                data = response.json()
            except ValueError:
                data = {"message": response.text[:300]}
            field_name, message = problem_of(data)
            raise rejected(self.name, field_name, self.scrub(message))
        ADVISED_WAIT.set(retry_after(response))
        return response

    @abstractmethod
    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        """Send the job; returns what identifies it upstream (at least `id`)."""

    @abstractmethod
    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        """Its state now; raises UpstreamError when it failed or is gone."""

    async def download(
        self, http: httpx.AsyncClient, state: dict[str, Any], done: Done, target: Path
    ) -> None:
        """Stream the video into `target` under the size cap (default: GET `done.url`,
        with the key only when it is on the provider's own host)."""
        if done.url is None:
            raise generation_failed(self.name, "it reported completion but no video URL")
        own = urlsplit(done.url).netloc == urlsplit(self.base_url).netloc
        if not own:
            from kinema.inputs import check_url

            check_url(done.url, "upstream output", self.policy)
        key = own and self.key_on_downloads
        await self.stream_to(http, done.url, target, self.auth_headers() if key else {})

    async def stream_to(
        self, http: httpx.AsyncClient, url: str, target: Path, headers: dict[str, str]
    ) -> None:
        cap = self.options.max_output_bytes
        try:
            async with http.stream(
                "GET", url, headers=headers, timeout=self.options.request_timeout_seconds,
                follow_redirects=True,
            ) as response:  # fmt: skip
                if response.status_code in (403, 404, 410):
                    raise ResultExpired(f"HTTP {response.status_code}")
                if response.status_code == 429 or response.status_code >= 500:
                    raise Retryable(f"HTTP {response.status_code}", retry_after(response))
                if response.status_code >= 400:
                    raise generation_failed(
                        self.name,
                        f"its video could not be downloaded (HTTP {response.status_code})",
                    )
                size = 0
                with open(target, "wb") as handle:
                    async for chunk in response.aiter_bytes(1 << 20):
                        size += len(chunk)
                        if size > cap:
                            raise UpstreamError(
                                f"The upstream provider '{self.name}' returned a video larger "
                                f"than the {cap} byte limit.",
                                "UpstreamOutputInvalid",
                            )
                        handle.write(chunk)
        except httpx.TransportError as exc:
            raise Retryable(f"download failed: {type(exc).__name__}") from None

    async def cancel(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:  # noqa: B027
        """Ask the provider to stop (best effort; kinds without a cancel do nothing)."""

    async def cleanup(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:  # noqa: B027
        """After mirroring: free the provider's copy where it keeps one (best effort)."""


def __getattr__(name: str) -> Any:
    # `render` lives in sequence.py (which imports this module); it stays importable
    # from here, where callers have always found it.
    if name == "render":
        from kinema.providers.sequence import render

        return render
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
