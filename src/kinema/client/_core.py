"""The client's decisions, free of I/O, shared by the sync and async clients: where requests
go, what a status string means, which failures are retried and after how long, and how an
error answer becomes an exception. The clients only move bytes."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from kinema import __version__
from kinema.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    KinemaClientError,
    status_error_class,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
GENERATIONS_PATH = "/v2/video/generations"
CANCEL_PATH = GENERATIONS_PATH + "/cancel"
LIST_PATH = GENERATIONS_PATH + "/list"
EVENTS_PATH = GENERATIONS_PATH + "/events"
MODELS_PATH = "/v2/models"
DEFAULT_TIMEOUT = 60.0  # one HTTP request
DEFAULT_MAX_RETRIES = 2
DEFAULT_WAIT_TIMEOUT = 1800.0  # a whole wait: hosted models can take many minutes
USER_AGENT = f"kinema-python/{__version__}"

# Normalised statuses. The AI/ML API has spelled them several ways over time; anything
# not known to be final is treated as still pending.
QUEUED, GENERATING, COMPLETED, ERROR = "queued", "generating", "completed", "error"
_STATUSES = {
    **dict.fromkeys(("queued", "waiting", "pending", "starting", "created"), QUEUED),
    **dict.fromkeys(("generating", "active", "processing", "in_progress", "running"), GENERATING),
    **dict.fromkeys(("completed", "succeeded", "success", "done", "finished"), COMPLETED),
    **dict.fromkeys(("error", "failed", "failure", "cancelled", "canceled", "expired"), ERROR),
}


def normalize_status(raw: str) -> str:
    """queued / generating / completed / error for every documented spelling; an unknown
    spelling is kept (lower-cased) and counts as pending."""
    key = raw.strip().lower()
    return _STATUSES.get(key, key or QUEUED)


# --------------------------------------------------------------------------- configuration
def resolve_base_url(base_url: str | None) -> str:
    """The argument, else $KINEMA_BASE_URL, else a local `kinema serve`. A trailing `/v2`
    (how the AI/ML API docs write their base URL) is accepted and dropped."""
    url = (base_url or os.environ.get("KINEMA_BASE_URL") or DEFAULT_BASE_URL).strip()
    url = url.rstrip("/")
    url = url.removesuffix("/v2")
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https:// (got {url!r})")
    return url


def resolve_api_key(api_key: str | None) -> str | None:
    """The argument, else $KINEMA_API_KEY, else $AIMLAPI_KEY."""
    return api_key or os.environ.get("KINEMA_API_KEY") or os.environ.get("AIMLAPI_KEY") or None


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


# --------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    # Safe to send again after it may have reached the server (None: GET/HEAD/DELETE are).
    idempotent: bool | None = None

    def url(self, base_url: str) -> str:
        return self.path if "://" in self.path else base_url + self.path

    @property
    def retry_safe(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in ("GET", "HEAD", "DELETE")


PRIORITIES = ("low", "normal", "high")
MAX_IDEMPOTENCY_KEY = 255
MAX_DEADLINE_SECONDS = 30 * 86400


def _problem(field: str, message: str, expected: str, received: Any) -> dict[str, Any]:
    return {"field": field, "message": message, "expected": expected, "received": received}


@dataclass(frozen=True)
class SubmitOptions:
    """Kinema's submit extensions: the `Idempotency-Key`, `X-Kinema-Start-Timeout`,
    `X-Kinema-Run-Timeout` and `X-Kinema-Priority` headers and the `webhook_url` query
    parameter (servers without them, like the hosted AI/ML API, ignore them)."""

    idempotency_key: str | None = None
    start_timeout: float | None = None
    run_timeout: float | None = None
    priority: str | None = None
    webhook_url: str | None = None

    def problems(self) -> list[dict[str, Any]]:
        """What the server would refuse, in its 400 `details` shape."""
        found: list[dict[str, Any]] = []
        key = self.idempotency_key
        if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
            found.append({"field": "Idempotency-Key", "message": "must be 1-255 characters"})
        for name, value in (
            ("X-Kinema-Start-Timeout", self.start_timeout),
            ("X-Kinema-Run-Timeout", self.run_timeout),
        ):
            if value is not None and not 0 < value <= MAX_DEADLINE_SECONDS:
                found.append(
                    _problem(name, "must be a number of seconds", "0 < seconds <= 2592000", value)
                )
        if self.priority is not None and self.priority not in PRIORITIES:
            found.append(
                _problem(
                    "X-Kinema-Priority", "unknown priority", "low | normal | high", self.priority
                )
            )
        return found

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        if self.start_timeout is not None:
            headers["X-Kinema-Start-Timeout"] = repr(float(self.start_timeout))
        if self.run_timeout is not None:
            headers["X-Kinema-Run-Timeout"] = repr(float(self.run_timeout))
        if self.priority is not None:
            headers["X-Kinema-Priority"] = self.priority
        return headers

    def params(self) -> dict[str, str]:
        return {"webhook_url": self.webhook_url} if self.webhook_url is not None else {}


def create_request(body: dict[str, Any], options: SubmitOptions | None = None) -> ApiRequest:
    """A submit. The unified route serves all five models; the legacy vendor routes add
    nothing here. With an Idempotency-Key it is safe to retry whatever happened to the
    first attempt: the server answers a repeat with the job the first one made."""
    options = options or SubmitOptions()
    return ApiRequest(
        "POST", GENERATIONS_PATH, params=options.params() or None, json=body,
        headers=options.headers() or None, idempotent=options.idempotency_key is not None,
    )  # fmt: skip


def quote_request(body: dict[str, Any]) -> ApiRequest:
    """A dry run: validated and priced like a submit, creating nothing (so retried freely)."""
    return ApiRequest(
        "POST", GENERATIONS_PATH, params={"dry_run": "true"}, json=body, idempotent=True
    )


def get_request(generation_id: str) -> ApiRequest:
    return ApiRequest("GET", GENERATIONS_PATH, params={"generation_id": generation_id})


def cancel_request(generation_id: str) -> ApiRequest:
    # Asking twice for the same end state is harmless (the flow reads a 409 after a retry).
    return ApiRequest("POST", CANCEL_PATH, params={"generation_id": generation_id}, idempotent=True)


def delete_request(generation_id: str) -> ApiRequest:
    return ApiRequest("DELETE", GENERATIONS_PATH, params={"generation_id": generation_id})


def list_request(
    *, status: str | None, model: str | None, limit: int | None, after: str | None
) -> ApiRequest:
    query = {"status": status, "model": model, "after": after}
    params = {name: value for name, value in query.items() if value is not None}
    if limit is not None:
        params["limit"] = str(limit)
    return ApiRequest("GET", LIST_PATH, params=params)


def events_request(generation_id: str, last_event_id: str | None) -> ApiRequest:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return ApiRequest("GET", EVENTS_PATH, params={"generation_id": generation_id}, headers=headers)


def models_request() -> ApiRequest:
    return ApiRequest("GET", MODELS_PATH)


def merged_headers(base: Mapping[str, str], request: ApiRequest) -> dict[str, str]:
    return {**base, **(request.headers or {})}


@dataclass(frozen=True)
class Reply:
    """A complete HTTP answer (any status)."""

    status: int
    headers: Mapping[str, str]
    content: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.content) if self.content else None
        except (ValueError, UnicodeDecodeError):
            return None


# Failure kinds: could not connect (request never sent), timed out, connection broke after
# the request may have been sent, the overall deadline passed, or the URL is unusable.
CONNECT, TIMEOUT, BROKEN, DEADLINE, INVALID = "connect", "timeout", "broken", "deadline", "invalid"


@dataclass(frozen=True)
class Failure:
    """No (complete) answer. `sent` is False only when the request surely never left."""

    kind: str
    sent: bool
    message: str
    url: str = ""


def classify(exc: httpx.TransportError, url: str) -> Failure:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return Failure(TIMEOUT, False, f"timed out connecting ({detail})", url)
    if isinstance(exc, httpx.TimeoutException):
        return Failure(TIMEOUT, True, f"timed out waiting for the server ({detail})", url)
    if isinstance(exc, httpx.ConnectError):
        return Failure(CONNECT, False, detail, url)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(INVALID, False, detail, url)
    return Failure(BROKEN, True, detail, url)


def to_error(outcome: Reply | Failure) -> KinemaClientError:
    """The exception for an outcome that will not be retried (any more)."""
    if isinstance(outcome, Reply):
        return error_from_reply(outcome)
    url = outcome.url
    if outcome.kind == TIMEOUT:
        return APITimeoutError(f"request to {url} {outcome.message}", url=url)
    if outcome.kind == CONNECT:
        return APIConnectionError(f"cannot connect to {url}: {outcome.message}", url=url)
    if outcome.kind == INVALID:
        return APIConnectionError(f"cannot request {url}: {outcome.message}", url=url)
    return APIConnectionError(f"connection to {url} broke: {outcome.message}", url=url)


def error_from_reply(reply: Reply) -> APIStatusError:
    """The AI/ML API envelope (`message`, `path`, `requestId`, `statusCode`, `details`)
    as the exception for its status; other error bodies are read as best we can."""
    body = reply.json()
    message: Any = None
    details: list[dict[str, Any]] | None = None
    request_id = path = None
    if isinstance(body, Mapping):
        message = body.get("message")
        error = body.get("error")
        if message is None and isinstance(error, Mapping):
            message = error.get("message")
        elif message is None and isinstance(error, str):
            message = error
        if message is None and "detail" in body:
            message = body["detail"]
        raw_details = body.get("details")
        if isinstance(raw_details, list):
            details = [d for d in raw_details if isinstance(d, dict)]
        request_id = body.get("requestId") if isinstance(body.get("requestId"), str) else None
        path = body.get("path") if isinstance(body.get("path"), str) else None
    if isinstance(message, list):
        message = "; ".join(
            str(m.get("msg", m)) if isinstance(m, Mapping) else str(m) for m in message
        )
    if not message:
        text = reply.content[:300].decode("utf-8", "replace").strip()
        message = text or f"HTTP {reply.status}"
    headers = {k.lower(): v for k, v in reply.headers.items()}
    request_id = request_id or headers.get("x-inference-id") or headers.get("x-request-id")
    return status_error_class(reply.status)(
        str(message),
        status_code=reply.status,
        request_id=request_id,
        path=path,
        details=details,
        body=body,
        retry_after=parse_retry_after(reply.headers),
    )


# --------------------------------------------------------------------------- retries
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # a server asking for longer is not worth blocking a call for
BACKOFF_BASE, BACKOFF_CAP = 0.5, 8.0


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date); None if absent/garbled."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so many clients
    failing together do not come back together."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)
    return delay / 2 + rng.uniform(0, delay / 2)


def retry_delay(
    request: ApiRequest, outcome: Reply | Failure, attempt: int, max_retries: int | None,
    rng: random.Random,
) -> float | None:  # fmt: skip
    """Seconds to wait before retrying `outcome`, or None: do not retry.

    A request that is safe to repeat (GET, DELETE, a cancel, a dry run, and a submit with
    an Idempotency-Key, which the server answers with the first attempt's job) is retried
    on any transport failure and on 408/429/5xx. Any other request only when it surely
    never reached the server (connection refused / connect timeout) or got 429, which the
    contract defines as "not accepted"."""
    if max_retries is not None and attempt >= max_retries:
        return None
    if isinstance(outcome, Failure):
        if outcome.kind in (DEADLINE, INVALID) or (not request.retry_safe and outcome.sent):
            return None
        return backoff(attempt, rng)
    if outcome.status == 429 or (request.retry_safe and outcome.status in RETRY_STATUSES):
        after = parse_retry_after(outcome.headers)
        return backoff(attempt, rng) if after is None else min(after, MAX_RETRY_AFTER)
    return None


def lacks_route(error: KinemaClientError) -> bool:
    """The server has no such route (an older Kinema, the hosted AI/ML API): a 404 that is
    about the path (`Cannot GET /v2/...`), not about a generation, or a 405/501."""
    if not isinstance(error, APIStatusError):
        return False
    if error.status_code in (405, 501):
        return True
    return error.status_code == 404 and error.message.startswith("Cannot ")


@dataclass
class PollSchedule:
    """Poll delays: start quick (local jobs take seconds), grow by half each poll up to a
    cap (hosted jobs take minutes), ±20 % jitter. A `Retry-After` on a poll answer is a
    floor."""

    initial: float = 0.5
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    _next: float = 0.0

    def next(self, retry_after: float | None = None) -> float:
        base = self._next or self.initial
        self._next = min(self.cap, base * 1.5)
        delay = base * self.rng.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


def remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def request_timeout(timeout: float | None, deadline: float | None) -> float | None:
    """Per-request timeout, never beyond the overall deadline."""
    if deadline is None:
        return timeout
    left = max(0.001, remaining(deadline))
    return left if timeout is None else min(timeout, left)


# --------------------------------------------------------------------------- event streams
def is_event_stream(status: int, headers: Mapping[str, str]) -> bool:
    """A 2xx `text/event-stream` answer: its body is read line by line as it arrives."""
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return 200 <= status < 300 and kind.lower().startswith("text/event-stream")


@dataclass(frozen=True)
class SseEvent:
    """One dispatched Server-Sent Event; `id` is the last event id in effect."""

    id: str | None
    event: str
    data: str


class SseParser:
    """The `text/event-stream` format (WHATWG HTML, "Server-sent events"), fed one line at
    a time (without its line ending): fields accumulate until a blank line dispatches
    them; comment lines (`: keep-alive`) and unknown fields are ignored. `last_id` is the
    id of the last dispatched event (what `Last-Event-ID` resumes after): an event cut
    before its blank line is never dispatched, and its `id:` does not count."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.retry_ms: int | None = None
        self._id = last_id
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            data, event = self._data, self._event or "message"
            self._data, self._event = [], ""
            self.last_id = self._id
            return SseEvent(self.last_id, event, "\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def reset(self) -> None:
        """Forget a half-received event (its connection broke)."""
        self._id, self._event, self._data = self.last_id, "", []


STREAM_IDLE_TIMEOUT = 45.0  # Kinema sends a keep-alive every 15 s: 45 s of silence is a dead line


def stream_timeout(timeout: float | None, deadline: float | None) -> httpx.Timeout:
    """Timeouts of an event stream: `timeout` to connect and get the answer's head, then
    no read may wait more than STREAM_IDLE_TIMEOUT (or `timeout`, if longer): a stream is
    quiet between events by design."""
    connect = request_timeout(timeout, deadline)
    read = None if timeout is None else max(timeout, STREAM_IDLE_TIMEOUT)
    return httpx.Timeout(connect, read=read)


# --------------------------------------------------------------------------- downloads
@dataclass(frozen=True)
class BodyPlan:
    """Where the answer's body goes in the `.part` file, and the full size if known."""

    write_at: int
    total: int | None


def plan_body(status: int, headers: Mapping[str, str], offset: int) -> BodyPlan | None:
    """How to store a download answer: a 206 continues at its Content-Range start, a 200
    (the server ignored Range) starts over; None for anything else (an error answer)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if status == 206:
        start, total = parse_content_range(lowered.get("content-range", ""))
        if start is None or start > offset:
            return None
        return BodyPlan(start, total)
    if status == 200:
        length = lowered.get("content-length", "")
        return BodyPlan(0, int(length) if length.isdigit() else None)
    return None


def parse_content_range(value: str) -> tuple[int | None, int | None]:
    """(start, total) from `bytes START-END/TOTAL` or `bytes */TOTAL`."""
    unit, _, spec = value.strip().partition(" ")
    if unit.lower() != "bytes" or "/" not in spec:
        return None, None
    span, _, total_text = spec.partition("/")
    total = int(total_text) if total_text.isdigit() else None
    first = span.partition("-")[0]
    return (int(first) if first.isdigit() else None), total
