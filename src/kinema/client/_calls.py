"""The flows of single API calls (submit, get, quote, cancel, delete, list, models), on
one retry loop, `call`; each is a generator of `_effects` (see `_flows`)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kinema.client._core import (
    DEADLINE,
    ApiRequest,
    Failure,
    Reply,
    SubmitOptions,
    cancel_request,
    create_request,
    delete_request,
    get_request,
    list_request,
    models_request,
    quote_request,
    remaining,
    retry_delay,
    to_error,
)
from kinema.client._effects import Flow, G, Make, Send, Sleep
from kinema.client.errors import APIStatusError, ConflictError, DeadlineExceeded, NotFoundError
from kinema.client.models import ModelInfo, Quote


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


def json_object(reply: Reply) -> Mapping[str, Any]:
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
    generation = make(json_object(reply))
    if not generation.id:
        raise APIStatusError(
            "the submit answer has no id", status_code=reply.status, body=reply.json()
        )
    return generation


def get(generation_id: str, make: Make[G], *, max_retries: int, rng: random.Random) -> Flow[G]:
    reply = yield from call(get_request(generation_id), max_retries=max_retries, rng=rng)
    return make(json_object(reply))


def quote(body: dict[str, Any], *, max_retries: int, rng: random.Random) -> Flow[Quote]:
    reply = yield from call(quote_request(body), max_retries=max_retries, rng=rng)
    answer = json_object(reply)
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
    return make(json_object(reply))


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
    body = json_object((yield from call(request, max_retries=max_retries, rng=rng)))
    data = body.get("data")
    items = [make(item) for item in data or [] if isinstance(item, Mapping)]
    cursor = body.get("next")
    return items, cursor if isinstance(cursor, str) and cursor else None


def list_models(*, max_retries: int, rng: random.Random) -> Flow[list[ModelInfo]]:
    reply = yield from call(models_request(), max_retries=max_retries, rng=rng)
    data = json_object(reply).get("data")
    return [ModelInfo.parse(e) for e in data or [] if isinstance(e, Mapping)]
