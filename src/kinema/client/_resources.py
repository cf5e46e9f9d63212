"""What `Client` and `AsyncClient` share above the flows: configuration, and the argument
handling of `videos.*` / `models.*` that turns a call into a flow. The two clients add only
the code that runs a flow (blocking or awaiting)."""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from kinema.client import _flows
from kinema.client._core import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    SubmitOptions,
    deadline_after,
    default_headers,
    resolve_api_key,
    resolve_base_url,
)
from kinema.client._inputs import MediaInput, build_body
from kinema.client.errors import LocalValidationError
from kinema.client.models import GenerationBase, ModelInfo, Quote

G = TypeVar("G", bound=GenerationBase)

DEFAULT_POLL_INTERVAL = 0.5


class BaseClient(ABC, Generic[G]):
    """Configuration both clients share; see `Client` for the meaning of each argument."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:  # fmt: skip
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = resolve_base_url(base_url)
        self.api_key = resolve_api_key(api_key)
        self.timeout = timeout
        self.max_retries = max_retries
        # Sent on API calls only: video links are pre-signed and may live on another host
        # (a CDN, S3), which must never see the key.
        self._api_headers = default_headers(self.api_key)
        self._rng = random.Random()
        self._features = _flows.Features()

    @abstractmethod
    def _make(self, body: Mapping[str, Any]) -> G:
        """A generation bound to this client (sync or async), from a poll/submit body."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


MAX_PAGE = 100  # the most a server's list page holds


@dataclass(frozen=True)
class ListQuery:
    """`videos.list` arguments: filters, page size, and where the page starts."""

    status: str | None = None
    model: str | None = None
    limit: int | None = None
    after: str | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit (a page's size) must be 1-{MAX_PAGE}, got {self.limit}")


def submit_options(
    idempotency_key: str | None, start_timeout: float | None, run_timeout: float | None,
    priority: str | None, webhook_url: str | None,
) -> SubmitOptions:  # fmt: skip
    """The submit's extensions, checked here (LocalValidationError, nothing sent). Each
    call gets its own Idempotency-Key unless the caller brings one (an order id, say)."""
    options = SubmitOptions(
        idempotency_key=str(uuid.uuid4()) if idempotency_key is None else idempotency_key,
        start_timeout=start_timeout, run_timeout=run_timeout, priority=priority,
        webhook_url=webhook_url,
    )  # fmt: skip
    problems = options.problems()
    if problems:
        raise LocalValidationError(problems)
    return options


class VideosBase(Generic[G]):
    """`client.videos`: the flows behind create / get / wait / generate / download /
    stream / cancel / list / delete / quote."""

    def __init__(self, client: BaseClient[G]) -> None:
        self._core = client

    @staticmethod
    def _body(
        model: str, image: MediaInput | None, audio: MediaInput | None,
        last_image: MediaInput | None, fields: Mapping[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        # Built (files read, spec checked) before the flow starts: a bad request raises
        # LocalValidationError from the call itself, before any network traffic.
        return build_body(model, {"image": image, "audio": audio, "last_image": last_image}, fields)

    def _create_flow(self, body: dict[str, Any], options: SubmitOptions) -> _flows.Flow[G]:
        c = self._core
        return _flows.create(body, c._make, options=options, max_retries=c.max_retries, rng=c._rng)

    def _get_flow(self, generation_id: str | GenerationBase) -> _flows.Flow[G]:
        c = self._core
        return _flows.get(_id_of(generation_id), c._make, max_retries=c.max_retries, rng=c._rng)

    def _wait_flow(
        self, generation: str | GenerationBase, timeout: float | None, poll_interval: float
    ) -> _flows.Flow[G]:
        c = self._core
        return _flows.wait(
            _id_of(generation), c._make, deadline=deadline_after(timeout), timeout=timeout,
            poll_interval=poll_interval, max_retries=c.max_retries, rng=c._rng,
            features=c._features,
        )  # fmt: skip

    def _generate_flow(
        self, body: dict[str, Any], options: SubmitOptions, timeout: float | None,
        poll_interval: float,
    ) -> _flows.Flow[G]:  # fmt: skip
        c = self._core
        return _flows.generate(
            body, c._make, options=options, timeout=timeout, poll_interval=poll_interval,
            max_retries=c.max_retries, rng=c._rng, features=c._features,
        )  # fmt: skip

    def _stream_flow(
        self, generation: str | GenerationBase, last_event_id: int | str | None
    ) -> _flows.Flow[None]:
        c = self._core
        after = None if last_event_id is None else str(last_event_id)
        return _flows.stream(
            _id_of(generation), c._make, last_event_id=after, max_retries=c.max_retries,
            rng=c._rng,
        )  # fmt: skip

    def _cancel_flow(self, generation: str | GenerationBase) -> _flows.Flow[G]:
        c = self._core
        return _flows.cancel(_id_of(generation), c._make, max_retries=c.max_retries, rng=c._rng)

    def _delete_flow(self, generation: str | GenerationBase) -> _flows.Flow[None]:
        c = self._core
        return _flows.delete(_id_of(generation), max_retries=c.max_retries, rng=c._rng)

    def _list_flow(self, query: ListQuery) -> _flows.Flow[tuple[list[G], str | None]]:
        c = self._core
        return _flows.list_page(
            c._make, status=query.status, model=query.model, limit=query.limit,
            after=query.after, max_retries=c.max_retries, rng=c._rng,
        )  # fmt: skip

    def _quote_flow(self, body: dict[str, Any]) -> _flows.Flow[Quote]:
        c = self._core
        return _flows.quote(body, max_retries=c.max_retries, rng=c._rng)

    def _download_flow(
        self, generation: str | GenerationBase, path: str | Path | None
    ) -> Generator[_flows.Effect, Any, Path]:
        c = self._core
        current: GenerationBase
        if isinstance(generation, GenerationBase) and generation.video is not None:
            current = generation
        else:  # an id, or a generation seen before it completed: ask for its video now
            current = yield from _flows.get(
                _id_of(generation), c._make, max_retries=c.max_retries, rng=c._rng
            )
        return (
            yield from _flows.download(
                current, path, c._make, max_retries=c.max_retries, rng=c._rng
            )
        )


class ModelsBase:
    """`client.models`: the catalogue (`GET /v2/models`)."""

    def __init__(self, client: BaseClient[Any]) -> None:
        self._core = client

    def _list_flow(self) -> _flows.Flow[list[ModelInfo]]:
        return _flows.list_models(max_retries=self._core.max_retries, rng=self._core._rng)


def _id_of(generation: str | GenerationBase) -> str:
    generation_id = generation.id if isinstance(generation, GenerationBase) else generation
    if not isinstance(generation_id, str) or not generation_id:
        raise ValueError("a generation id (non-empty string) is required")
    return generation_id
