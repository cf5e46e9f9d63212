"""The effects a client flow yields, and the answers it is sent back (`_flows` says how
the two clients perform them). The download helpers here are the performers' part of a
`Fetch`."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from kinema.client._core import BROKEN, ApiRequest, Failure
from kinema.client.models import GenerationBase

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
