"""`kinema.AsyncClient`: the asyncio client (httpx.AsyncClient underneath). Same flows,
same arguments and same errors as `kinema.Client`; only the effects are awaited."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from kinema.client._core import (
    BROKEN,
    DEADLINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    USER_AGENT,
    ApiRequest,
    Failure,
    Reply,
    classify,
    is_event_stream,
    merged_headers,
    plan_body,
    remaining,
    request_timeout,
    stream_timeout,
)
from kinema.client._flows import (
    Close,
    Effect,
    Emit,
    Fetch,
    FetchResult,
    Flow,
    Notify,
    Open,
    Opened,
    ReadLine,
    Send,
    Sleep,
    open_part,
    unusable_answer,
)
from kinema.client._inputs import MediaInput
from kinema.client._resources import (
    DEFAULT_POLL_INTERVAL,
    BaseClient,
    ListQuery,
    ModelsBase,
    VideosBase,
    submit_options,
)
from kinema.client.models import (
    AsyncGeneration,
    AsyncPage,
    GenerationBase,
    GenerationEvent,
    ModelInfo,
    Quote,
)

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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:  # fmt: skip
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.videos = AsyncVideos(self)
        self.models = AsyncModels(self)

    async def close(self) -> None:
        if self._owns_http:
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
        streams: list[_AsyncEventStream] = []
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                value = await self._perform(effect, on_progress, streams)
        finally:
            flow.close()
            await _close_all(streams)

    async def _iterate(self, flow: Flow[None]) -> AsyncIterator[Any]:
        """Perform `flow`'s effects and yield what it emits (`videos.stream`)."""
        value: Any = None
        streams: list[_AsyncEventStream] = []
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration:
                    return
                if isinstance(effect, Emit):
                    yield effect.value
                    value = None
                else:
                    value = await self._perform(effect, None, streams)
        finally:
            flow.close()
            await _close_all(streams)

    async def _perform(
        self, effect: Effect, on_progress: ProgressCallback | None,
        streams: list[_AsyncEventStream],
    ) -> Any:  # fmt: skip
        if isinstance(effect, Send):
            request = effect.request
            timeout = request_timeout(self.timeout, effect.deadline)
            return await _bounded(effect.deadline, lambda: self._send(request, timeout))
        if isinstance(effect, ReadLine):
            return await _bounded(effect.deadline, effect.handle.read_line)
        if isinstance(effect, Open):
            outcome = await _bounded(effect.deadline, lambda: self._open(effect))
            if isinstance(outcome, Opened):
                streams.append(outcome.handle)
            return outcome
        if isinstance(effect, Close):
            await effect.handle.close()
            with suppress(ValueError):
                streams.remove(effect.handle)
        elif isinstance(effect, Sleep):
            await anyio.sleep(effect.seconds)
        elif isinstance(effect, Notify):
            if on_progress is not None and isinstance(effect.generation, AsyncGeneration):
                outcome = on_progress(effect.generation)
                if inspect.isawaitable(outcome):
                    await outcome
        elif isinstance(effect, Fetch):
            return await self._fetch(effect)
        return None

    async def _send(self, request: ApiRequest, timeout: float | None) -> Reply | Failure:
        url = request.url(self.base_url)
        try:
            response = await self._http.request(
                request.method, url, params=request.params, json=request.json,
                headers=merged_headers(self._api_headers, request), timeout=timeout,
            )  # fmt: skip
        except httpx.TransportError as exc:
            return classify(exc, url)
        return Reply(response.status_code, dict(response.headers.items()), response.content)

    async def _open(self, effect: Open) -> Opened | Reply | Failure:
        request = effect.request
        url = request.url(self.base_url)
        try:
            response = await self._http.send(
                self._http.build_request(
                    request.method, url, params=request.params, json=request.json,
                    headers=merged_headers(self._api_headers, request),
                    timeout=stream_timeout(self.timeout, effect.deadline),
                ),
                stream=True,
            )  # fmt: skip
        except httpx.TransportError as exc:
            return classify(exc, url)
        headers = dict(response.headers.items())
        if is_event_stream(response.status_code, headers):
            return Opened(_AsyncEventStream(response, url), response.status_code, headers)
        content = b""
        try:
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) >= ERROR_BODY_LIMIT:
                    break
        except httpx.TransportError as exc:
            return classify(exc, url)
        finally:
            await response.aclose()
        return Reply(response.status_code, headers, content)

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


async def _bounded(deadline: float | None, work: Callable[[], Awaitable[Any]]) -> Any:
    """`await work()`, or `Failure(DEADLINE)` once `deadline` passes: a cancel scope
    bounds the whole of it (httpx's timeouts bound each phase only)."""
    if deadline is None:
        return await work()
    left = remaining(deadline)
    if left <= 0:
        return Failure(DEADLINE, False, "the deadline passed")
    with anyio.move_on_after(left):
        return await work()
    return Failure(DEADLINE, True, "the deadline passed mid-request")


class _AsyncEventStream:
    """An open event stream: its response, read a line at a time."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response = response
        self.url = url
        self.lines = response.aiter_lines()

    async def read_line(self) -> str | Failure | None:
        try:
            return await anext(self.lines, None)
        except httpx.TransportError as exc:
            return classify(exc, self.url)
        except httpx.StreamError as exc:
            return Failure(BROKEN, True, str(exc) or type(exc).__name__, self.url)

    async def close(self) -> None:
        with suppress(httpx.HTTPError, httpx.StreamError, OSError, RuntimeError):
            await self.response.aclose()


async def _close_all(streams: list[_AsyncEventStream]) -> None:
    with anyio.CancelScope(shield=True):  # also when the caller was cancelled
        for stream in streams:
            await stream.close()


class AsyncVideos(VideosBase[AsyncGeneration]):
    """`client.videos` of AsyncClient: the methods of `kinema.client.sync.Videos`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._client = client
        self._run = client._run

    async def create(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, idempotency_key: str | None = None,
        start_timeout: float | None = None, run_timeout: float | None = None,
        priority: str | None = None, webhook_url: str | None = None, **fields: Any,
    ) -> AsyncGeneration:  # fmt: skip
        """Submit a job (see `Videos.create`)."""
        body = self._body(model, image, audio, last_image, fields)
        options = submit_options(idempotency_key, start_timeout, run_timeout, priority, webhook_url)
        return await self._run(self._create_flow(body, options))

    async def get(self, generation_id: str | GenerationBase) -> AsyncGeneration:
        return await self._run(self._get_flow(generation_id))

    async def wait(
        self, generation: str | GenerationBase, *, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None, poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncGeneration:  # fmt: skip
        """Follow the job until final (see `Videos.wait`); `on_progress` may be async."""
        return await self._run(self._wait_flow(generation, timeout, poll_interval), on_progress)

    async def generate(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL, idempotency_key: str | None = None,
        start_timeout: float | None = None, run_timeout: float | None = None,
        priority: str | None = None, webhook_url: str | None = None, **fields: Any,
    ) -> AsyncGeneration:  # fmt: skip
        """`create` + `wait` under one deadline (see `Videos.generate`)."""
        body = self._body(model, image, audio, last_image, fields)
        options = submit_options(idempotency_key, start_timeout, run_timeout, priority, webhook_url)
        flow = self._generate_flow(body, options, timeout, poll_interval)
        return await self._run(flow, on_progress)

    async def download(
        self, generation: str | GenerationBase, path: str | Path | None = None
    ) -> Path:
        return await self._run(self._download_flow(generation, path))

    def stream(
        self, generation: str | GenerationBase, *, last_event_id: int | str | None = None
    ) -> AsyncIterator[GenerationEvent[AsyncGeneration]]:
        """The generation's live events (see `Videos.stream`): ``async for event in
        client.videos.stream(id)``. Leaving the loop early? Close it
        (``contextlib.aclosing``) to drop the connection at once."""
        events: AsyncIterator[GenerationEvent[AsyncGeneration]] = self._client._iterate(
            self._stream_flow(generation, last_event_id)
        )
        return events

    async def cancel(self, generation: str | GenerationBase) -> AsyncGeneration:
        """Cancel a queued or running job (see `Videos.cancel`)."""
        return await self._run(self._cancel_flow(generation))

    async def delete(self, generation: str | GenerationBase) -> None:
        """Delete the generation and its files (see `Videos.delete`)."""
        await self._run(self._delete_flow(generation))

    async def list(
        self, *, status: str | None = None, model: str | None = None,
        limit: int | None = None, after: str | None = None,
    ) -> AsyncPage[AsyncGeneration]:  # fmt: skip
        """Your generations, newest first (see `Videos.list`): ``async for`` over the
        page walks all of them, fetching the next pages as needed."""
        return await self._page(ListQuery(status, model, limit, after))

    async def _page(self, query: ListQuery) -> AsyncPage[AsyncGeneration]:
        data, cursor = await self._run(self._list_flow(query))

        async def fetch(after: str) -> AsyncPage[AsyncGeneration]:
            return await self._page(ListQuery(query.status, query.model, query.limit, after))

        return AsyncPage(data, cursor, _fetch=fetch)

    async def quote(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, **fields: Any,
    ) -> Quote:  # fmt: skip
        """The price of a submit, nothing created (see `Videos.quote`)."""
        body = self._body(model, image, audio, last_image, fields)
        return await self._run(self._quote_flow(body))


class AsyncModels(ModelsBase):
    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._run = client._run

    async def list(self) -> builtins.list[ModelInfo]:
        return await self._run(self._list_flow())
