"""The client's control flow, written once for both clients as generators (sans-I/O).

A flow yields effects (`Send` an HTTP request, `Sleep`, `Notify` a progress callback,
`Fetch` a download into a file, `Open` / `ReadLine` / `Close` an event stream, `Emit` a
value to the caller's iterator) and is sent back each effect's result. `sync.Client`
performs effects with blocking calls, `aio.AsyncClient` with awaits; the retry loops,
deadlines, poll schedule, stream resumption and download resumption below are the same
code for both."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

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
    SseParser,
    SubmitOptions,
    backoff,
    cancel_request,
    create_request,
    delete_request,
    error_from_reply,
    events_request,
    get_request,
    lacks_route,
    list_request,
    models_request,
    parse_content_range,
    parse_retry_after,
    quote_request,
    remaining,
    retry_delay,
    to_error,
)
from kinema.client.errors import (
    APIConnectionError,
    APIStatusError,
    ConflictError,
    DeadlineExceeded,
    GenerationFailed,
    KinemaClientError,
    NotFoundError,
)
from kinema.client.models import GenerationBase, GenerationEvent, JobError, ModelInfo, Quote

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


@dataclass(frozen=True)
class Open:
    """Start a streaming request. Answer `Opened` for a 2xx `text/event-stream` answer
    (`_core.is_event_stream`; its body not read yet), else a `Reply` (body read) or a
    `Failure`; give up with `Failure(DEADLINE)` at `deadline`."""

    request: ApiRequest
    deadline: float | None = None


@dataclass(frozen=True)
class Opened:
    handle: Any  # the performer's; handed back in ReadLine / Close
    status: int
    headers: Mapping[str, str]


@dataclass(frozen=True)
class ReadLine:
    """The next line of an opened stream, without its line ending: a `str`, None once the
    server ended the stream, or a `Failure` (`DEADLINE` at `deadline`)."""

    handle: Any
    deadline: float | None = None


@dataclass(frozen=True)
class Close:
    """Drop an opened stream. (Whatever a flow leaves open, the performer closes when the
    flow ends.)"""

    handle: Any


@dataclass(frozen=True)
class Emit:
    """Hand `value` to the caller iterating the flow (`videos.stream`)."""

    value: Any


Effect = Send | Sleep | Notify | Fetch | Open | ReadLine | Close | Emit
Flow = Generator[Effect, Any, T]
Make = Callable[[Mapping[str, Any]], G]


@dataclass
class Attempts:
    """How many attempts of a call may have reached the server."""

    sent: int = 0


def call(
    request: ApiRequest, *, max_retries: int | None, rng: random.Random,
    deadline: float | None = None, attempts: Attempts | None = None,
) -> Flow[Reply]:  # fmt: skip
    """One API call with the retry policy of `_core.retry_delay`; a non-2xx answer that is
    not retried raises its typed error. `max_retries=None`: retry until the deadline."""
    attempt = 0
    while True:
        if deadline is not None and remaining(deadline) <= 0:
            raise DeadlineExceeded("the deadline passed", generation_id=None)
        outcome: Reply | Failure = yield Send(request, deadline)
        if attempts is not None and (isinstance(outcome, Reply) or outcome.sent):
            attempts.sent += 1
        if isinstance(outcome, Reply) and outcome.status < 400:
            return outcome
        if isinstance(outcome, Failure) and outcome.kind == DEADLINE:
            raise DeadlineExceeded("the deadline passed mid-request", generation_id=None)
        delay = retry_delay(request, outcome, attempt, max_retries, rng)
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
    body: dict[str, Any], make: Make[G], *, options: SubmitOptions, max_retries: int,
    rng: random.Random, deadline: float | None = None,
) -> Flow[G]:  # fmt: skip
    """A submit; with `options.idempotency_key` every retry carries the same key, so
    however many attempts reach the server, they make one job."""
    try:
        reply = yield from call(
            create_request(body, options), max_retries=max_retries, rng=rng, deadline=deadline
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


def quote(body: dict[str, Any], *, max_retries: int, rng: random.Random) -> Flow[Quote]:
    reply = yield from call(quote_request(body), max_retries=max_retries, rng=rng)
    answer = _json_object(reply)
    if answer.get("status") != "quote":
        # A server without dry runs (the hosted AI/ML API) took it for a submit.
        made = answer.get("id") or answer.get("generation_id")
        raise APIStatusError(
            "the server does not support quotes (dry_run); it answered like a submit"
            + (f" and created generation {made}" if made else ""),
            status_code=reply.status, body=answer,
        )  # fmt: skip
    return Quote.parse(answer)


def cancel(generation_id: str, make: Make[G], *, max_retries: int, rng: random.Random) -> Flow[G]:
    """Cancel; the answer is the generation (error `Cancelled`, or still generating for a
    moment while its worker stops). A 409 after a retry means an earlier attempt did it."""
    attempts = Attempts()
    try:
        reply = yield from call(
            cancel_request(generation_id), max_retries=max_retries, rng=rng, attempts=attempts
        )
    except ConflictError:
        if attempts.sent < 2:
            raise
        now = yield from get(generation_id, make, max_retries=max_retries, rng=rng)
        if now.error is None or now.error.name != "Cancelled":
            raise
        return now
    return make(_json_object(reply))


def delete(generation_id: str, *, max_retries: int, rng: random.Random) -> Flow[None]:
    """Delete; a 404 after a retry means an earlier attempt did it."""
    attempts = Attempts()
    try:
        yield from call(
            delete_request(generation_id), max_retries=max_retries, rng=rng, attempts=attempts
        )
    except NotFoundError:
        if attempts.sent < 2:
            raise


def list_page(
    make: Make[G], *, status: str | None, model: str | None, limit: int | None,
    after: str | None, max_retries: int, rng: random.Random,
) -> Flow[tuple[list[G], str | None]]:  # fmt: skip
    """One page of the caller's generations, newest first, and the next page's cursor."""
    request = list_request(status=status, model=model, limit=limit, after=after)
    body = _json_object((yield from call(request, max_retries=max_retries, rng=rng)))
    data = body.get("data")
    items = [make(item) for item in data or [] if isinstance(item, Mapping)]
    cursor = body.get("next")
    return items, cursor if isinstance(cursor, str) and cursor else None


def list_models(*, max_retries: int, rng: random.Random) -> Flow[list[ModelInfo]]:
    reply = yield from call(models_request(), max_retries=max_retries, rng=rng)
    data = _json_object(reply).get("data")
    return [ModelInfo.parse(e) for e in data or [] if isinstance(e, Mapping)]


@dataclass
class Features:
    """What a client has learned about its server: `events` turns False once the events
    route turned out to be missing (an older Kinema, the hosted AI/ML API), so later
    waits poll straight away."""

    events: bool | None = None


def _event_id(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() else None


class EventReader(Generic[G]):
    """The events of one generation over as many connections as it takes. A connection
    that drops (or ends before the terminal event: a restart, a proxy's idle timeout) is
    opened again with `Last-Event-ID`, so every event arrives once and in order. After
    `max_retries` failures in a row without an event in between, the last one's error is
    raised; `deadline` bounds it all (DeadlineExceeded). `next()` answers None after the
    terminal event, or when the server says nothing more will come (204). `wait_if_full`:
    whether a 429 (the key holds the most open streams allowed) is waited out like any
    retryable answer, or raised at once (for a caller that can poll instead)."""

    def __init__(
        self, generation_id: str, make: Make[G], *, last_event_id: str | None,
        max_retries: int, rng: random.Random, deadline: float | None = None,
        wait_if_full: bool = True,
    ) -> None:  # fmt: skip
        self.generation_id = generation_id
        self.wait_if_full = wait_if_full
        self.make = make
        self.max_retries = max_retries
        self.rng = rng
        self.deadline = deadline
        self.parser = SseParser(last_event_id)
        self.handle: Any = None
        self.failures = 0  # in a row, since the last event
        self.finished = False

    def _request(self) -> ApiRequest:
        return events_request(self.generation_id, self.parser.last_id)

    def next(self) -> Flow[GenerationEvent[G] | None]:
        while not self.finished:
            if self.handle is None:
                yield from self._open()
                continue
            line: str | Failure | None = yield ReadLine(self.handle, self.deadline)
            if isinstance(line, str):
                sse = self.parser.feed(line)
                event = self._event(sse.id, sse.event, sse.data) if sse is not None else None
                if event is not None:
                    self.failures = 0
                    if event.done:  # the last one: no need to wait for the server to close
                        yield from self.close()
                        self.finished = True
                    return event
                continue
            yield from self.close()
            self.parser.reset()  # an event cut midway is dropped, then sent again
            if isinstance(line, Failure) and line.kind == DEADLINE:
                raise self._late("mid-stream")
            yield from self._pause(line or Failure(
                BROKEN, True, "the server ended the event stream before the generation "
                "finished", self._request().path,
            ))  # fmt: skip
        return None

    def close(self) -> Flow[None]:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            yield Close(handle)

    def _open(self) -> Flow[None]:
        outcome: Opened | Reply | Failure = yield Open(self._request(), self.deadline)
        if isinstance(outcome, Opened):
            self.handle = outcome.handle
            return
        if isinstance(outcome, Failure) and outcome.kind == DEADLINE:
            raise self._late("while connecting")
        if isinstance(outcome, Reply) and outcome.status == 204:
            self.finished = True  # Last-Event-ID was the terminal event: nothing more
            return
        if isinstance(outcome, Reply) and outcome.status < 400:
            raise APIStatusError(
                f"the server answered {outcome.status} without an event stream",
                status_code=outcome.status, body=outcome.json(),
            )  # fmt: skip
        yield from self._pause(outcome)

    def _pause(self, outcome: Reply | Failure) -> Flow[None]:
        """Wait before the next attempt, or raise `outcome`'s error: not retryable, or
        too many failures in a row."""
        delay = retry_delay(self._request(), outcome, self.failures, self.max_retries, self.rng)
        self.failures += 1
        full = isinstance(outcome, Reply) and outcome.status == 429
        if delay is None or (full and not self.wait_if_full):
            raise to_error(outcome)
        if self.deadline is not None and delay >= remaining(self.deadline):
            raise self._late("while reconnecting") from to_error(outcome)
        yield Sleep(delay)

    def _late(self, where: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"the deadline passed {where}", generation_id=self.generation_id)

    def _event(self, raw_id: str | None, kind: str, data: str) -> GenerationEvent[G] | None:
        try:
            body = json.loads(data)
        except ValueError:
            return None  # not a poll body: nothing this client knows how to read
        if not isinstance(body, Mapping):
            return None
        return GenerationEvent(_event_id(raw_id), kind, self.make(body))


def stream(
    generation_id: str, make: Make[G], *, last_event_id: str | None, max_retries: int,
    rng: random.Random,
) -> Flow[None]:  # fmt: skip
    """Emit every event of the generation (after `last_event_id`) until the terminal one."""
    reader = EventReader(
        generation_id, make, last_event_id=last_event_id, max_retries=max_retries, rng=rng
    )
    while (event := (yield from reader.next())) is not None:
        yield Emit(event)


def _final(generation: G) -> G:
    """A finished generation returned if it completed with a video, else raised."""
    if generation.status == COMPLETED and generation.video is None:
        broken = JobError("MissingVideo", "the job completed without a video")
        raise GenerationFailed(replace(generation, status=ERROR, error=broken))
    if generation.status == ERROR:
        raise GenerationFailed(generation)
    return generation


def wait(
    generation_id: str, make: Make[G], *, deadline: float | None, timeout: float | None,
    poll_interval: float, max_retries: int, rng: random.Random,
    features: Features | None = None,
) -> Flow[G]:  # fmt: skip
    """Follow the job until it is final: return it completed, raise GenerationFailed, or
    raise DeadlineExceeded once `deadline` passes (the job keeps running server-side).

    The job's event stream first (each status change and progress step as it happens);
    polling when the server has no events route, or the stream keeps failing. With a
    deadline, a failing poll is retried until the deadline: a server restart during a
    long job should not lose the wait."""
    last: G | None = None
    try:
        if features is None or features.events is not False:
            reader = EventReader(
                generation_id, make, last_event_id=None, max_retries=max_retries, rng=rng,
                deadline=deadline, wait_if_full=False,  # polls are not capped: no waiting
            )  # fmt: skip
            try:
                while (event := (yield from reader.next())) is not None:
                    last = event.generation
                    yield Notify(last)
                    if last.done:
                        return _final(last)
            except (APIStatusError, APIConnectionError) as exc:
                # No such route, or a stream that keeps failing: polling says the rest (and
                # raises the error itself if it is about the generation or the key).
                if features is not None and lacks_route(exc):
                    features.events = False
        schedule = PollSchedule(initial=poll_interval, rng=rng)
        while True:
            reply = yield from call(
                get_request(generation_id), rng=rng, deadline=deadline,
                max_retries=None if deadline is not None else max_retries,
            )  # fmt: skip
            last = make(_json_object(reply))
            yield Notify(last)
            if last.done:
                return _final(last)
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
    body: dict[str, Any], make: Make[G], *, options: SubmitOptions, timeout: float | None,
    poll_interval: float, max_retries: int, rng: random.Random,
    features: Features | None = None,
) -> Flow[G]:  # fmt: skip
    """create + wait under one deadline that starts before the submit."""
    deadline = None if timeout is None else time.monotonic() + timeout
    created = yield from create(
        body, make, options=options, max_retries=max_retries, rng=rng, deadline=deadline
    )
    yield Notify(created)
    return (
        yield from wait(
            created.id, make, deadline=deadline, timeout=timeout, poll_interval=poll_interval,
            max_retries=max_retries, rng=rng, features=features,
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
