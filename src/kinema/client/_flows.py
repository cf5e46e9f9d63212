"""The client's control flow, written once for both clients as generators (sans-I/O).

A flow yields effects (`Send` an HTTP request, `Sleep`, `Notify` a progress callback,
`Fetch` a download into a file) and is sent back each effect's result. `sync.Client`
performs effects with blocking calls, `aio.AsyncClient` with awaits; the retry loops,
deadlines, poll schedule and download resumption below are the same code for both."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from kinema.client._core import (
    BROKEN,
    COMPLETED,
    DEADLINE,
    ERROR,
    RETRY_STATUSES,
    ApiRequest,
    Failure,
    PollSchedule,
    Reply,
    backoff,
    create_request,
    error_from_reply,
    get_request,
    models_request,
    parse_content_range,
    parse_retry_after,
    remaining,
    retry_delay,
    to_error,
)
from kinema.client.errors import (
    APIStatusError,
    DeadlineExceeded,
    GenerationFailed,
    KinemaClientError,
)
from kinema.client.models import GenerationBase, JobError, ModelInfo

G = TypeVar("G", bound=GenerationBase)
T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Make one HTTP request; answer a `Reply` or a `Failure`. The performer must give up
    (with `Failure(DEADLINE)`) once `deadline` (time.monotonic) passes, even mid-request."""

    request: ApiRequest
    deadline: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Notify:
    """Hand a fresh status to the caller's `on_progress`."""

    generation: GenerationBase


@dataclass(frozen=True)
class Fetch:
    """GET `url` with `headers` and store the body in `part` as `_core.plan_body` says;
    answer a `FetchResult`."""

    url: str
    headers: Mapping[str, str]
    part: Path
    offset: int


@dataclass(frozen=True)
class FetchResult:
    status: int  # 0: no answer at all
    headers: Mapping[str, str]
    end: int  # bytes in the .part file after this attempt
    total: int | None  # the full size, when the server said
    failure: Failure | None = None
    content: bytes = b""  # the body of an error answer


def unusable_answer(
    status: int, headers: Mapping[str, str], offset: int, content: bytes
) -> FetchResult:
    """A download answer `_core.plan_body` would not store: an error status, or a 206 for
    a range we did not ask for (reported as a failure, so the flow retries it)."""
    failure = (
        Failure(BROKEN, True, "the server answered a range that was not asked for")
        if status < 300 else None
    )  # fmt: skip
    return FetchResult(status, headers, offset, None, failure, content)


def open_part(part: Path, at: int) -> BinaryIO:
    """The .part file opened for writing at `at`, anything after it dropped."""
    handle = open(part, "r+b" if part.exists() else "wb")  # noqa: SIM115 (caller closes)
    handle.seek(at)
    handle.truncate()
    return handle


Effect = Send | Sleep | Notify | Fetch
Flow = Generator[Effect, Any, T]
Make = Callable[[Mapping[str, Any]], G]


def call(
    request: ApiRequest, *, max_retries: int | None, rng: random.Random,
    deadline: float | None = None,
) -> Flow[Reply]:  # fmt: skip
    """One API call with the retry policy of `_core.retry_delay`; a non-2xx answer that is
    not retried raises its typed error. `max_retries=None`: retry until the deadline."""
    attempt = 0
    while True:
        if deadline is not None and remaining(deadline) <= 0:
            raise DeadlineExceeded("the deadline passed", generation_id=None)
        outcome: Reply | Failure = yield Send(request, deadline)
        if isinstance(outcome, Reply) and outcome.status < 400:
            return outcome
        if isinstance(outcome, Failure) and outcome.kind == DEADLINE:
            raise DeadlineExceeded("the deadline passed mid-request", generation_id=None)
        delay = retry_delay(request.method, outcome, attempt, max_retries, rng)
        if delay is None:
            raise to_error(outcome)
        if deadline is not None and delay >= remaining(deadline):
            # Waiting out this delay would end past the deadline: stop now, say why.
            raise DeadlineExceeded("the deadline passed", generation_id=None) from to_error(outcome)
        yield Sleep(delay)
        attempt += 1


def _json_object(reply: Reply) -> Mapping[str, Any]:
    body = reply.json()
    if not isinstance(body, Mapping):
        raise APIStatusError(
            "the server's answer is not a JSON object", status_code=reply.status, body=body
        )
    return body


def create(
    body: dict[str, Any], make: Make[G], *, max_retries: int, rng: random.Random,
    deadline: float | None = None,
) -> Flow[G]:  # fmt: skip
    try:
        reply = yield from call(
            create_request(body), max_retries=max_retries, rng=rng, deadline=deadline
        )
    except DeadlineExceeded as exc:
        raise DeadlineExceeded(
            "the deadline passed before the server confirmed the submit; a job may or may "
            "not have been created",
            generation_id=None,
        ) from exc.__cause__
    generation = make(_json_object(reply))
    if not generation.id:
        raise APIStatusError(
            "the submit answer has no id", status_code=reply.status, body=reply.json()
        )
    return generation


def get(generation_id: str, make: Make[G], *, max_retries: int, rng: random.Random) -> Flow[G]:
    reply = yield from call(get_request(generation_id), max_retries=max_retries, rng=rng)
    return make(_json_object(reply))


def list_models(*, max_retries: int, rng: random.Random) -> Flow[list[ModelInfo]]:
    reply = yield from call(models_request(), max_retries=max_retries, rng=rng)
    data = _json_object(reply).get("data")
    return [ModelInfo.parse(e) for e in data or [] if isinstance(e, Mapping)]


def wait(
    generation_id: str, make: Make[G], *, deadline: float | None, timeout: float | None,
    poll_interval: float, max_retries: int, rng: random.Random,
) -> Flow[G]:  # fmt: skip
    """Poll until the job is final: return it completed, raise GenerationFailed, or raise
    DeadlineExceeded once `deadline` passes (the job keeps running server-side). With a
    deadline, a failing poll is retried until the deadline: a server restart during a
    long job should not lose the wait."""
    schedule = PollSchedule(initial=poll_interval, rng=rng)
    last: G | None = None
    try:
        while True:
            reply = yield from call(
                get_request(generation_id), rng=rng, deadline=deadline,
                max_retries=None if deadline is not None else max_retries,
            )  # fmt: skip
            last = make(_json_object(reply))
            yield Notify(last)
            if last.status == COMPLETED and last.video is None:
                broken = JobError("MissingVideo", "the job completed without a video")
                raise GenerationFailed(replace(last, status=ERROR, error=broken))
            if last.status == COMPLETED:
                return last
            if last.status == ERROR:
                raise GenerationFailed(last)
            delay = schedule.next(parse_retry_after(reply.headers))
            if deadline is not None:
                delay = min(delay, max(0.0, remaining(deadline)))
            yield Sleep(delay)
    except DeadlineExceeded as exc:
        seen = ""
        if last is not None:
            percent = f", {last.progress:.0f}%" if last.progress is not None else ""
            seen = f" (last seen {last.status}{percent})"
        raise DeadlineExceeded(
            f"generation {generation_id} did not finish within {timeout or 0:g} s{seen}; it keeps "
            "running on the server: wait for it again or download it later",
            generation_id=generation_id, last=last,
        ) from exc.__cause__  # fmt: skip


def generate(
    body: dict[str, Any], make: Make[G], *, timeout: float | None, poll_interval: float,
    max_retries: int, rng: random.Random,
) -> Flow[G]:  # fmt: skip
    """create + wait under one deadline that starts before the submit."""
    deadline = None if timeout is None else time.monotonic() + timeout
    created = yield from create(body, make, max_retries=max_retries, rng=rng, deadline=deadline)
    yield Notify(created)
    return (
        yield from wait(
            created.id, make, deadline=deadline, timeout=timeout, poll_interval=poll_interval,
            max_retries=max_retries, rng=rng,
        )
    )  # fmt: skip


def target_path(generation: GenerationBase, path: str | Path | None) -> Path:
    name = (generation.video.file_name if generation.video else None) or f"{generation.id}.mp4"
    name = Path(name).name or f"{generation.id}.mp4"  # never let the server pick a directory
    if path is None:
        return Path.cwd() / name
    target = Path(path).expanduser()
    return target / name if target.is_dir() else target


def download(
    generation: G, path: str | Path | None, make: Make[G], *, max_retries: int,
    rng: random.Random,
) -> Flow[Path]:  # fmt: skip
    """Stream the video into `<target>.part` and rename it when complete. A cut transfer
    resumes with `Range: bytes=<have>-` (also across runs, from a `.part` left behind);
    an expired signed URL is refreshed once by polling the generation again."""
    if generation.video is None:
        raise KinemaClientError(
            f"generation {generation.id} has no video yet (status {generation.status})"
        )
    target = target_path(generation, path)
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    url, refreshed, stalled = generation.video.url, False, 0
    while True:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        result: FetchResult = yield Fetch(url, headers, part, offset)
        if result.failure is None and 200 <= result.status < 300:
            if result.total is None or result.end >= result.total:
                part.replace(target)
                return target
        elif result.status == 416 and offset:
            # Our .part already holds the whole file, or is not a prefix of this one.
            _, total = parse_content_range(dict(result.headers).get("content-range", ""))
            if total == offset:
                part.replace(target)
                return target
            part.unlink(missing_ok=True)
            result = replace(result, end=0)
        elif result.status in (401, 403, 404, 410) and not refreshed:
            refreshed = True  # a signed link that expired: a fresh poll signs a new one
            fresh = yield from get(generation.id, make, max_retries=max_retries, rng=rng)
            url = fresh.video.url if fresh.video else url
            continue
        elif result.status >= 400 and result.status not in RETRY_STATUSES:
            raise error_from_reply(Reply(result.status, result.headers, result.content))
        stalled = 0 if result.end > offset else stalled + 1
        offset = result.end
        if stalled > max_retries:
            if result.failure is not None:
                raise to_error(result.failure)
            raise KinemaClientError(f"download of {url} keeps ending early at {offset} bytes")
        yield Sleep(backoff(stalled, rng))
