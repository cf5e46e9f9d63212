"""A generation's event stream as a flow (`_effects`): read over as many connections as
it takes, resumed with `Last-Event-ID` (see `_flows`)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic

from kinema.client._core import (
    BROKEN,
    DEADLINE,
    ApiRequest,
    Failure,
    Reply,
    SseParser,
    events_request,
    remaining,
    retry_delay,
    to_error,
)
from kinema.client._effects import Close, Emit, Flow, G, Make, Open, Opened, ReadLine, Sleep
from kinema.client.errors import APIStatusError, DeadlineExceeded
from kinema.client.models import GenerationEvent


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
