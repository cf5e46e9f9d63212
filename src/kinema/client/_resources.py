"""What `Client` and `AsyncClient` share above the flows: configuration, and the argument
handling of `videos.*` / `models.*` that turns a call into a flow. The two clients add only
the code that runs a flow (blocking or awaiting)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from kinema.client import _flows
from kinema.client._core import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    deadline_after,
    default_headers,
    resolve_api_key,
    resolve_base_url,
)
from kinema.client._inputs import MediaInput, build_body
from kinema.client.models import GenerationBase, ModelInfo

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

    @abstractmethod
    def _make(self, body: Mapping[str, Any]) -> G:
        """A generation bound to this client (sync or async), from a poll/submit body."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class VideosBase(Generic[G]):
    """`client.videos`: the flows behind create / get / wait / generate / download."""

    def __init__(self, client: BaseClient[G]) -> None:
        self._core = client

    def _create_flow(
        self, model: str, image: MediaInput | None, audio: MediaInput | None,
        last_image: MediaInput | None, fields: Mapping[str, Any],
    ) -> _flows.Flow[G]:  # fmt: skip
        # Built (files read, spec checked) before the flow starts: a bad request raises
        # LocalValidationError from the call itself, before any network traffic.
        body = build_body(model, {"image": image, "audio": audio, "last_image": last_image}, fields)
        c = self._core
        return _flows.create(body, c._make, max_retries=c.max_retries, rng=c._rng)

    def _get_flow(self, generation_id: str) -> _flows.Flow[G]:
        c = self._core
        return _flows.get(_id_of(generation_id), c._make, max_retries=c.max_retries, rng=c._rng)

    def _wait_flow(
        self, generation: str | GenerationBase, timeout: float | None, poll_interval: float
    ) -> _flows.Flow[G]:
        c = self._core
        return _flows.wait(
            _id_of(generation), c._make, deadline=deadline_after(timeout), timeout=timeout,
            poll_interval=poll_interval, max_retries=c.max_retries, rng=c._rng,
        )  # fmt: skip

    def _generate_flow(
        self, model: str, image: MediaInput | None, audio: MediaInput | None,
        last_image: MediaInput | None, fields: Mapping[str, Any], timeout: float | None,
        poll_interval: float,
    ) -> _flows.Flow[G]:  # fmt: skip
        body = build_body(model, {"image": image, "audio": audio, "last_image": last_image}, fields)
        c = self._core
        return _flows.generate(
            body, c._make, timeout=timeout, poll_interval=poll_interval,
            max_retries=c.max_retries, rng=c._rng,
        )  # fmt: skip

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
