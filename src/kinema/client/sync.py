"""`kinema.Client`: the blocking client (httpx.Client underneath)."""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

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
from kinema.client.models import Generation, GenerationBase, GenerationEvent, ModelInfo, Page, Quote

T = TypeVar("T")
ProgressCallback = Callable[[Generation], object]
ERROR_BODY_LIMIT = 64 * 1024


class Client(BaseClient[Generation]):
    """Blocking client for Kinema and the hosted AI/ML API (same wire contract).

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` or ``https://api.aimlapi.com``
            (a trailing ``/v2`` is accepted). Default: ``$KINEMA_BASE_URL``, else
            ``http://127.0.0.1:8000``.
        api_key: the bearer key. Default: ``$KINEMA_API_KEY``, else ``$AIMLAPI_KEY``.
        timeout: seconds for one HTTP request (None: no limit). ``wait`` / ``generate``
            have their own overall deadline on top.
        max_retries: retries of a failed request, on connection errors, timeouts, 408,
            429 and 5xx. Submits too: each carries an ``Idempotency-Key`` (one per
            ``create`` call, the same on its retries), so a retry never starts a second
            job on Kinema.
        http_client: an ``httpx.Client`` to send with (proxies, custom transports); the
            caller closes it.

    Use as a context manager (or call ``close()``) to release connections::

        with kinema.Client() as client:
            video = client.videos.generate(model="pixverse/v5/image-to-video",
                                           image=Path("photo.png"), prompt="zoom in")
            video.download("out.mp4")
    """

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.videos = Videos(self)
        self.models = Models(self)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def _make(self, body: Mapping[str, Any]) -> Generation:
        return Generation(**Generation.fields_from(body), _client=self)

    # -- running flows -------------------------------------------------------------------
    def _run(self, flow: Flow[T], on_progress: ProgressCallback | None = None) -> T:
        driver = self._drive(flow, on_progress)
        while True:
            try:
                next(driver)  # a flow run this way emits nothing
            except StopIteration as stop:
                result: T = stop.value
                return result

    def _drive(
        self, flow: Flow[T], on_progress: ProgressCallback | None = None
    ) -> Generator[Any, None, T]:
        """Perform `flow`'s effects; yield what it emits; return its result. Streams it
        leaves open are closed when it ends, however it ends."""
        value: Any = None
        streams: list[_EventStream] = []
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                if isinstance(effect, Emit):
                    yield effect.value
                    value = None
                else:
                    value = self._perform(effect, on_progress, streams)
        finally:
            flow.close()
            for stream in streams:
                stream.close()

    def _perform(
        self, effect: Effect, on_progress: ProgressCallback | None, streams: list[_EventStream]
    ) -> Any:
        if isinstance(effect, Send):
            request = effect.request
            timeout = request_timeout(self.timeout, effect.deadline)
            return self._bounded(effect.deadline, lambda: self._send(request, timeout))
        if isinstance(effect, ReadLine):
            return self._bounded(effect.deadline, effect.handle.read_line)
        if isinstance(effect, Open):
            return self._open_bounded(effect, streams)
        if isinstance(effect, Close):
            effect.handle.close()
            with suppress(ValueError):
                streams.remove(effect.handle)
        elif isinstance(effect, Sleep):
            time.sleep(effect.seconds)
        elif isinstance(effect, Notify):
            if on_progress is not None and isinstance(effect.generation, Generation):
                on_progress(effect.generation)
        elif isinstance(effect, Fetch):
            return self._fetch(effect)
        return None

    def _bounded(
        self, deadline: float | None, work: Callable[[], Any],
        discard: Callable[[Any], None] | None = None,
    ) -> Any:  # fmt: skip
        """`work()`, or `Failure(DEADLINE)` once `deadline` passes. httpx timeouts bound
        each phase (connect, each read), not a whole request, so a server trickling bytes
        could outlast any deadline: with one, the work runs on a helper thread that we
        stop waiting for at the deadline (its own timeout, capped to the time left, then
        ends it). A result that comes after that goes to `discard`."""
        if deadline is None:
            return work()
        left = remaining(deadline)
        if left <= 0:
            return Failure(DEADLINE, False, "the deadline passed")
        box: list[Any] = []
        abandoned = False
        lock = threading.Lock()
        done = threading.Event()

        def run() -> None:
            try:
                outcome: Any = work()
            except BaseException as exc:  # handed to the caller's thread below
                outcome = exc
            with lock:
                late = abandoned
                if not late:
                    box.append(outcome)
            if late and discard is not None and not isinstance(outcome, BaseException):
                discard(outcome)
            done.set()

        threading.Thread(target=run, name="kinema-request", daemon=True).start()
        if not done.wait(left):
            with lock:
                if not box:
                    abandoned = True
                    return Failure(DEADLINE, True, "the deadline passed mid-request")
        outcome = box[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _send(self, request: ApiRequest, timeout: float | None) -> Reply | Failure:
        url = request.url(self.base_url)
        try:
            response = self._http.request(
                request.method, url, params=request.params, json=request.json,
                headers=merged_headers(self._api_headers, request), timeout=timeout,
            )  # fmt: skip
        except httpx.TransportError as exc:
            return classify(exc, url)
        return Reply(response.status_code, dict(response.headers.items()), response.content)

    def _open_bounded(self, effect: Open, streams: list[_EventStream]) -> Any:
        def discard(outcome: Any) -> None:
            if isinstance(outcome, Opened):
                outcome.handle.close()

        outcome = self._bounded(effect.deadline, lambda: self._open(effect), discard)
        if isinstance(outcome, Opened):
            streams.append(outcome.handle)
        return outcome

    def _open(self, effect: Open) -> Opened | Reply | Failure:
        request = effect.request
        url = request.url(self.base_url)
        try:
            response = self._http.send(
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
            return Opened(_EventStream(response, url), response.status_code, headers)
        content = b""
        try:
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) >= ERROR_BODY_LIMIT:
                    break
        except httpx.TransportError as exc:
            return classify(exc, url)
        finally:
            response.close()
        return Reply(response.status_code, headers, content)

    def _fetch(self, effect: Fetch) -> FetchResult:
        status, headers, end = 0, {}, effect.offset
        try:
            with self._http.stream(
                "GET", effect.url, headers=dict(effect.headers), follow_redirects=True
            ) as response:
                status, headers = response.status_code, dict(response.headers.items())
                plan = plan_body(status, headers, effect.offset)
                if plan is None:
                    content = b""
                    for chunk in response.iter_bytes():
                        content += chunk
                        if len(content) >= ERROR_BODY_LIMIT:
                            break
                    return unusable_answer(status, headers, effect.offset, content)
                end = plan.write_at
                with open_part(effect.part, plan.write_at) as out:
                    # As the network delivers it (no re-chunking buffer, whose contents a
                    # cut would lose): a video never sits whole in memory.
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        end += len(chunk)
                return FetchResult(status, headers, end, plan.total)
        except httpx.TransportError as exc:
            return FetchResult(status, headers, end, None, classify(exc, effect.url))


class _EventStream:
    """An open event stream: its response, read a line at a time."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response = response
        self.url = url
        self.lines = response.iter_lines()

    def read_line(self) -> str | Failure | None:
        try:
            return next(self.lines, None)
        except httpx.TransportError as exc:
            return classify(exc, self.url)
        except httpx.StreamError as exc:  # closed under us
            return Failure(BROKEN, True, str(exc) or type(exc).__name__, self.url)

    def close(self) -> None:
        with suppress(httpx.HTTPError, httpx.StreamError, OSError, RuntimeError):
            self.response.close()


class Videos(VideosBase[Generation]):
    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._client = client
        self._run = client._run

    def create(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, idempotency_key: str | None = None,
        start_timeout: float | None = None, run_timeout: float | None = None,
        priority: str | None = None, webhook_url: str | None = None, **fields: Any,
    ) -> Generation:  # fmt: skip
        """Submit a job; returns at once with its id and `queued` status.

        `fields` are the model's request fields (prompt, resolution, duration, ...).
        `image` / `audio` / `last_image` go to the model's image_url / audio_url /
        last_image_url; those (and the *_url fields themselves) take a URL, a data: URI,
        a local path (Path or str) or bytes, and local content is sent as a data: URI.
        The body is checked against the model's spec first: LocalValidationError (a
        BadRequestError) before any network call.

        Kinema's extensions: `idempotency_key` (default: a fresh one per call, reused by
        its retries; pass your own to make a resubmit after a crash safe too: the same
        key and body within 24 h answer the first job, another body a ConflictError),
        `start_timeout` / `run_timeout` (seconds: not started by then -> error
        `Expired`; running longer -> error `TimedOut`), `priority` (low / normal / high,
        among this key's jobs) and `webhook_url` (where the server POSTs the outcome;
        verify it with `kinema.client.verify_webhook`)."""
        body = self._body(model, image, audio, last_image, fields)
        options = submit_options(idempotency_key, start_timeout, run_timeout, priority, webhook_url)
        return self._run(self._create_flow(body, options))

    def get(self, generation_id: str | GenerationBase) -> Generation:
        """One poll: the generation as the server sees it now."""
        return self._run(self._get_flow(generation_id))

    def wait(
        self, generation: str | GenerationBase, *, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None, poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Generation:  # fmt: skip
        """Follow the job until it finishes; return it completed. Raises GenerationFailed
        (the server's error.name / message) or DeadlineExceeded once `timeout` seconds
        pass, in-flight requests included (the job keeps running). Follows the job's
        event stream (`stream`), so `on_progress` gets every status change and progress
        step as it happens; polls every `poll_interval` s and more (growing) instead when
        the server has no event stream or the stream keeps failing."""
        return self._run(self._wait_flow(generation, timeout, poll_interval), on_progress)

    def generate(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL, idempotency_key: str | None = None,
        start_timeout: float | None = None, run_timeout: float | None = None,
        priority: str | None = None, webhook_url: str | None = None, **fields: Any,
    ) -> Generation:  # fmt: skip
        """`create` + `wait` under one deadline of `timeout` seconds (submit included)."""
        body = self._body(model, image, audio, last_image, fields)
        options = submit_options(idempotency_key, start_timeout, run_timeout, priority, webhook_url)
        return self._run(self._generate_flow(body, options, timeout, poll_interval), on_progress)

    def download(self, generation: str | GenerationBase, path: str | Path | None = None) -> Path:
        """Stream a completed generation's video to `path` (see Generation.download)."""
        return self._run(self._download_flow(generation, path))

    def stream(
        self, generation: str | GenerationBase, *, last_event_id: int | str | None = None
    ) -> Iterator[GenerationEvent[Generation]]:
        """The generation's live events, from the first (or after `last_event_id`) to the
        terminal one (`event.done`), each as it happens: `status` changes and `progress`
        steps, each with the generation in that state. A dropped connection is resumed
        where it broke (every event once); `max_retries` drops in a row raise
        APIConnectionError. A server without event streams answers NotFoundError."""
        events: Iterator[GenerationEvent[Generation]] = self._client._drive(
            self._stream_flow(generation, last_event_id)
        )
        return events

    def cancel(self, generation: str | GenerationBase) -> Generation:
        """Cancel a queued or running job: it ends with error `Cancelled` (a running one
        within a second on local engines; the answer may still say `generating` while its
        worker stops) and nothing is charged. ConflictError if it already finished."""
        return self._run(self._cancel_flow(generation))

    def delete(self, generation: str | GenerationBase) -> None:
        """Delete the generation, its video and its stored inputs; it then answers
        NotFoundError everywhere and its video links stop working."""
        self._run(self._delete_flow(generation))

    def list(
        self, *, status: str | None = None, model: str | None = None,
        limit: int | None = None, after: str | None = None,
    ) -> Page[Generation]:  # fmt: skip
        """Your generations, newest first, filtered by `status` (queued / generating /
        completed / error) and `model`, `limit` per page (1-100; the server's default:
        20). Iterating the page walks all of them, fetching the next pages as needed::

            for generation in client.videos.list(status="completed"):
                ...
        """
        return self._page(ListQuery(status, model, limit, after))

    def _page(self, query: ListQuery) -> Page[Generation]:
        data, cursor = self._run(self._list_flow(query))

        def fetch(after: str) -> Page[Generation]:
            return self._page(ListQuery(query.status, query.model, query.limit, after))

        return Page(data, cursor, _fetch=fetch)

    def quote(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, **fields: Any,
    ) -> Quote:  # fmt: skip
        """What `create` with these arguments would cost (`credits_used`) and which
        backend would render it: validated exactly like a submit (errors included), but
        nothing is created or charged."""
        return self._run(self._quote_flow(self._body(model, image, audio, last_image, fields)))


class Models(ModelsBase):
    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._run = client._run

    def list(self) -> builtins.list[ModelInfo]:
        """The server's catalogue: each model's id, route, fields and prices."""
        return self._run(self._list_flow())
