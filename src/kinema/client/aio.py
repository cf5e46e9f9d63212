"""`kinema.AsyncClient`: the asyncio client (httpx.AsyncClient underneath). Same flows,
same arguments and same errors as `kinema.Client`; only the effects are awaited."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from kinema.client._core import (
    DEADLINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    USER_AGENT,
    ApiRequest,
    Failure,
    Reply,
    classify,
    plan_body,
    remaining,
    request_timeout,
)
from kinema.client._flows import (
    Effect,
    Fetch,
    FetchResult,
    Flow,
    Notify,
    Send,
    Sleep,
    open_part,
    unusable_answer,
)
from kinema.client._inputs import MediaInput
from kinema.client._resources import DEFAULT_POLL_INTERVAL, BaseClient, ModelsBase, VideosBase
from kinema.client.models import AsyncGeneration, GenerationBase, ModelInfo

T = TypeVar("T")
# A plain function or a coroutine function; an awaitable result is awaited.
ProgressCallback = Callable[[AsyncGeneration], object]
ERROR_BODY_LIMIT = 64 * 1024


class AsyncClient(BaseClient[AsyncGeneration]):
    """Async client for Kinema and the hosted AI/ML API; arguments, environment fallbacks
    (KINEMA_BASE_URL, KINEMA_API_KEY, AIMLAPI_KEY) and retry rules as `kinema.Client`::

        async with kinema.AsyncClient() as client:
            video = await client.videos.generate(model="video-01", image=Path("a.png"),
                                                 prompt="slow pan left")
            await video.download("out.mp4")
    """

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:  # fmt: skip
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._http = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.videos = AsyncVideos(self)
        self.models = AsyncModels(self)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    def _make(self, body: Mapping[str, Any]) -> AsyncGeneration:
        return AsyncGeneration(**AsyncGeneration.fields_from(body), _client=self)

    # -- running flows -------------------------------------------------------------------
    async def _run(self, flow: Flow[T], on_progress: ProgressCallback | None = None) -> T:
        value: Any = None
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                value = await self._perform(effect, on_progress)
        finally:
            flow.close()

    async def _perform(self, effect: Effect, on_progress: ProgressCallback | None) -> Any:
        if isinstance(effect, Send):
            return await self._send_bounded(effect)
        if isinstance(effect, Sleep):
            await anyio.sleep(effect.seconds)
        elif isinstance(effect, Notify):
            if on_progress is not None and isinstance(effect.generation, AsyncGeneration):
                outcome = on_progress(effect.generation)
                if inspect.isawaitable(outcome):
                    await outcome
        elif isinstance(effect, Fetch):
            return await self._fetch(effect)
        return None

    async def _send_bounded(self, effect: Send) -> Reply | Failure:
        if effect.deadline is None:
            return await self._send(effect.request, self.timeout)
        left = remaining(effect.deadline)
        if left <= 0:
            return Failure(DEADLINE, False, "the deadline passed")
        # A cancel scope bounds the whole request (httpx's timeouts bound each phase only).
        with anyio.move_on_after(left):
            return await self._send(effect.request, request_timeout(self.timeout, effect.deadline))
        return Failure(DEADLINE, True, "the deadline passed mid-request")

    async def _send(self, request: ApiRequest, timeout: float | None) -> Reply | Failure:
        url = request.url(self.base_url)
        try:
            response = await self._http.request(
                request.method, url, params=request.params,
                json=request.json, headers=self._api_headers, timeout=timeout,
            )  # fmt: skip
        except httpx.TransportError as exc:
            return classify(exc, url)
        return Reply(response.status_code, dict(response.headers.items()), response.content)

    async def _fetch(self, effect: Fetch) -> FetchResult:
        status, headers, end = 0, {}, effect.offset
        try:
            async with self._http.stream(
                "GET", effect.url, headers=dict(effect.headers), follow_redirects=True
            ) as response:
                status, headers = response.status_code, dict(response.headers.items())
                plan = plan_body(status, headers, effect.offset)
                if plan is None:
                    content = b""
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) >= ERROR_BODY_LIMIT:
                            break
                    return unusable_answer(status, headers, effect.offset, content)
                end = plan.write_at
                # Plain file writes: a network-sized chunk written to local disk takes
                # microseconds, less than handing it to a thread would.
                with open_part(effect.part, plan.write_at) as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        end += len(chunk)
                return FetchResult(status, headers, end, plan.total)
        except httpx.TransportError as exc:
            return FetchResult(status, headers, end, None, classify(exc, effect.url))


class AsyncVideos(VideosBase[AsyncGeneration]):
    """`client.videos` of AsyncClient: the methods of `kinema.client.sync.Videos`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._run = client._run

    async def create(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, **fields: Any,
    ) -> AsyncGeneration:  # fmt: skip
        """Submit a job (see `Videos.create`)."""
        return await self._run(self._create_flow(model, image, audio, last_image, fields))

    async def get(self, generation_id: str) -> AsyncGeneration:
        return await self._run(self._get_flow(generation_id))

    async def wait(
        self, generation: str | GenerationBase, *, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None, poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncGeneration:  # fmt: skip
        """Poll until final (see `Videos.wait`); `on_progress` may be async."""
        return await self._run(self._wait_flow(generation, timeout, poll_interval), on_progress)

    async def generate(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL, **fields: Any,
    ) -> AsyncGeneration:  # fmt: skip
        """`create` + `wait` under one deadline (see `Videos.generate`)."""
        flow = self._generate_flow(model, image, audio, last_image, fields, timeout, poll_interval)
        return await self._run(flow, on_progress)

    async def download(
        self, generation: str | GenerationBase, path: str | Path | None = None
    ) -> Path:
        return await self._run(self._download_flow(generation, path))


class AsyncModels(ModelsBase):
    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._run = client._run

    async def list(self) -> builtins.list[ModelInfo]:
        return await self._run(self._list_flow())
