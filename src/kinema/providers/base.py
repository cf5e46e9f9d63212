"""What every upstream provider shares: its configuration, the error mapping, and the
durable submit -> record -> poll -> mirror sequence.

A provider kind (`aimlapi.py`, `openai.py`...) only speaks its wire: `submit` (returns
its job id), `poll` (Pending / Done, or raises a mapped failure), `download` and
`cancel`. Everything else is here, once:

- Durability: before sending a submit, the job row records `phase: "submitting"` with an
  idempotency key; once the provider accepts, it records `phase: "accepted"` and the
  provider's job id. A worker that finds `accepted` resumes polling that job; one that
  finds `submitting` (a crash between sending and recording) re-sends with the same
  idempotency key where the provider honours one, and otherwise fails the job with
  `UpstreamOutcomeUnknown`: never a silent second paid job.
- Retries: 429 (honouring `Retry-After`), 5xx and connection failures are retried with
  backoff; a submit is re-sent only when it surely did not reach the provider (refused
  connection, 429/5xx answer) or the provider is idempotent.
- Errors: validation refusals name the field and the provider's message; auth and quota
  problems are operator-facing and never carry the key; timeouts, lost jobs and unknown
  outcomes have their own names.
- Mirroring: the result is streamed into the work dir under a size cap (the caller then
  stores it in Kinema's storage after a PyAV check), so clients only see Kinema's URLs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
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

from kinema.errors import Cancelled, JobFailure
from kinema.inputs import FetchPolicy
from kinema.specs.base import MediaRef, RenderRequest

log = logging.getLogger("kinema.providers")

SUBMITTING, ACCEPTED = "submitting", "accepted"
MAX_BACKOFF_SECONDS = 30.0


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
    submit_attempts: int = Field(default=4, ge=1)
    max_output_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    idempotent: bool | None = Field(
        default=None, description="Override whether re-sending a submit is safe."
    )
    wait_seconds: int = Field(
        default=0, ge=0, le=60,
        description="replicate: hold the create open up to N s (`Prefer: wait=N`); 0: async.",
    )  # fmt: skip


# ---- outcomes and errors ----------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    progress: float | None = None  # 0..1 when the provider reports it
    retry_after: float | None = None


@dataclass(frozen=True)
class Done:
    url: str | None = None  # where the video is (None: the provider's own content endpoint)
    cost: Any = None  # what the provider reports it charged


class Retryable(Exception):
    """A transient failure: retry after `retry_after` (or backoff). `sent` is False only
    when the request surely never reached the provider."""

    def __init__(self, why: str, retry_after: float | None = None, sent: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after
        self.sent = sent


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


QUOTA_WORDS = ("quota", "insufficient", "billing", "credit", "balance", "payment")


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
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
                message = message or str(text or "")
            elif isinstance(items, str):
                message = message or items
        message = message or str(data.get("message") or "")
    return field_name, (message or "no reason given")[:500]


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
            raise Retryable(f"HTTP {status}", retry_after(response), sent=status != 429)
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


# ---- per-model field mapping (fal, replicate, gemini) ---------------------------------------
def request_value(request: RenderRequest, source: str) -> Any:
    """One of our request's values, in the shape a provider table names it:
    `prompt`, `negative_prompt`, `image`/`last_image`/`audio` (URL or data: URI),
    `duration` (int s), `duration_s` ("8s"), `duration_str` ("8"), `resolution` ("720p"),
    `aspect` ("16:9"), `aspect_auto` (the aspect, or "auto"), `generate_audio`, `seed`,
    `style`, `tts_text`, `person_generation`. None: leave the provider's field out."""
    duration = round(request.duration) if request.duration is not None else None
    values: dict[str, Any] = {
        "prompt": request.prompt or None,
        "negative_prompt": request.negative_prompt,
        "image": request.image.url if request.image else None,
        "last_image": request.last_image.url if request.last_image else None,
        "audio": request.audio.url if request.audio else None,
        "duration": duration,
        "duration_s": f"{duration}s" if duration is not None else None,
        "duration_str": str(duration) if duration is not None else None,
        "resolution": f"{request.short_side}p",
        "aspect": request.aspect,
        "aspect_auto": request.aspect or "auto",
        "generate_audio": request.generate_audio,
        "seed": request.seed,
        "style": request.style,
        "tts_text": request.tts_text,
        "person_generation": request.person_generation,
    }
    if source not in values:
        raise UpstreamError(f"Unknown request value '{source}' in a field mapping.", "ConfigError")
    return values[source]


def model_entry(
    provider: Provider, table: dict[str, dict[str, Any]], request: RenderRequest
) -> dict[str, Any]:
    """The built-in table's entry for the request's model, with the upstream's `models`
    override merged over it (`fields` and `input` merged key by key, the rest replaced)."""
    base = table.get(request.model, {})
    override = provider.overrides(request.model)
    if not base and not override:
        raise UpstreamError(
            f"The upstream provider '{provider.name}' has no field mapping for model "
            f"'{request.model}'; the operator can add one with the upstream's `models` option.",
            "UpstreamUnsupported",
        )
    entry = {**base, **override}
    for merged in ("fields", "input"):
        entry[merged] = {**base.get(merged, {}), **override.get(merged, {})}
    return entry


def mapped_input(entry: dict[str, Any], request: RenderRequest) -> dict[str, Any]:
    """`fields` (provider field -> our value name) and constant `input`, None left out."""
    body = {
        name: value
        for name, source in entry["fields"].items()
        if source and (value := request_value(request, source)) is not None
    }
    return {**body, **entry["input"]}


def app_for(entry: dict[str, Any], request: RenderRequest, key: str = "app") -> str:
    """The provider's model/app id: `{key}_image` when the request has an image and the
    entry names one, else `{key}`."""
    if request.image is not None and entry.get(f"{key}_image"):
        return str(entry[f"{key}_image"])
    return str(entry[key])


class ResultExpired(Exception):
    """The result URL answered 403/404/410: ask the provider for a fresh one."""


# ---- the durable sequence ----------------------------------------------------------------
async def _backoff(attempt: int, hint: float | None) -> None:
    await asyncio.sleep(hint if hint is not None else min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt))


async def render(
    provider: Provider, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks
) -> Done:
    """Submit (or resume), wait, and mirror the result into `hooks.output_path`."""
    name = provider.name
    state = hooks.state if hooks.state and hooks.state.get("backend") == name else None
    if state is None or state.get("phase") != ACCEPTED:
        if state is not None and state.get("phase") == SUBMITTING and not provider.safe_to_resend:
            raise outcome_unknown(name)
        key = (state or {}).get("key") or f"kinema-{hooks.job_id}-{name}"
        await hooks.record({"backend": name, "phase": SUBMITTING, "key": key})
        accepted = await _submit(provider, http, request, hooks, key)
        state = {"backend": name, "phase": ACCEPTED, "key": key, **accepted}
        await hooks.record(state)
        log.info("job %s: accepted by upstream %s as %s", hooks.job_id, name, state["id"])
    else:
        log.info("job %s: resuming upstream %s job %s", hooks.job_id, name, state["id"])
    done = await _wait(provider, http, state, hooks)
    for attempt in range(provider.options.submit_attempts + 1):
        try:
            await provider.download(http, state, done, hooks.output_path)
            break
        except ResultExpired:
            if attempt >= 1:
                raise generation_failed(
                    name, "its result URL expired and no fresh one came"
                ) from None
            done = await _wait(provider, http, state, hooks)  # a fresh, signed URL
        except Retryable as exc:
            if attempt == provider.options.submit_attempts:
                raise unavailable(name, f"download: {exc.why}") from None
            await _backoff(attempt, exc.retry_after)
    if done.cost is not None:  # what the provider says it charged, kept on the job row
        hooks.notes["cost"] = done.cost
        await hooks.record({**state, "cost": done.cost})
    try:
        await provider.cleanup(http, state)
    except (Retryable, JobFailure, httpx.HTTPError):
        log.info("job %s: upstream %s cleanup failed (ignored)", hooks.job_id, name)
    return done


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
            await _backoff(attempt, exc.retry_after)
    raise unavailable(provider.name, "no attempt left")  # pragma: no cover


async def _wait(
    provider: Provider, http: httpx.AsyncClient, state: dict[str, Any], hooks: Hooks
) -> Done:
    interval = provider.options.poll_seconds or provider.poll_seconds
    deadline = time.monotonic() + provider.options.max_wait_seconds
    failures = 0
    while True:
        if hooks.cancelled():
            try:
                await provider.cancel(http, state)
            except (Retryable, JobFailure, httpx.HTTPError):
                log.info("job %s: upstream cancel failed (ignored)", hooks.job_id)
            raise Cancelled()
        if time.monotonic() > deadline:
            raise timed_out(provider.name, provider.options.max_wait_seconds)
        hint: float | None = None
        try:
            result = await provider.poll(http, state)
            failures = 0
        except Retryable as exc:
            failures += 1
            log.info("job %s: upstream poll failed (%s); retrying", hooks.job_id, exc.why)
            hint = (
                exc.retry_after
                if exc.retry_after is not None
                else min(MAX_BACKOFF_SECONDS, interval * 2 ** min(failures, 5))
            )
        else:
            if isinstance(result, Done):
                return result
            if result.progress is not None:
                hooks.progress(result.progress)
            hint = result.retry_after
        await asyncio.sleep(hint if hint is not None else interval)
