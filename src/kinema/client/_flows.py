"""The client's control flow, written once for both clients as generators (sans-I/O).

A flow yields effects (`Send` an HTTP request, `Sleep`, `Notify` a progress callback,
`Fetch` a download into a file, `Open` / `ReadLine` / `Close` an event stream, `Emit` a
value to the caller's iterator) and is sent back each effect's result. `sync.Client`
performs effects with blocking calls, `aio.AsyncClient` with awaits; the retry loops,
deadlines, poll schedule, stream resumption and download resumption below are the same
code for both.

The effects are in `_effects`, the single calls in `_calls`, the event stream in
`_events`; here are the long flows (wait, generate, download)."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kinema.client._calls import (
    Attempts,
    call,
    cancel,
    create,
    delete,
    get,
    json_object,
    list_models,
    list_page,
    quote,
)
from kinema.client._core import (
    COMPLETED,
    ERROR,
    RETRY_STATUSES,
    PollSchedule,
    Reply,
    SubmitOptions,
    backoff,
    error_from_reply,
    get_request,
    lacks_route,
    parse_content_range,
    parse_retry_after,
    remaining,
    to_error,
)
from kinema.client._effects import (
    Close,
    Effect,
    Emit,
    Fetch,
    FetchResult,
    Flow,
    G,
    Make,
    Notify,
    Open,
    Opened,
    ReadLine,
    Send,
    Sleep,
    open_part,
    unusable_answer,
)
from kinema.client._events import EventReader, Features, stream
from kinema.client.errors import (
    APIConnectionError,
    APIStatusError,
    DeadlineExceeded,
    GenerationFailed,
    KinemaClientError,
)
from kinema.client.models import GenerationBase, JobError

# What the clients (sync.py, aio.py, _resources.py) import from here.
__all__ = [
    "Attempts",
    "Close",
    "Effect",
    "Emit",
    "EventReader",
    "Features",
    "Fetch",
    "FetchResult",
    "Flow",
    "Make",
    "Notify",
    "Open",
    "Opened",
    "ReadLine",
    "Send",
    "Sleep",
    "call",
    "cancel",
    "create",
    "delete",
    "download",
    "generate",
    "get",
    "list_models",
    "list_page",
    "open_part",
    "quote",
    "stream",
    "target_path",
    "unusable_answer",
    "wait",
]


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
            last = make(json_object(reply))
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
