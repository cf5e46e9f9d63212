"""`kinema.Client`: the blocking client (httpx.Client underneath)."""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

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
from kinema.client.models import Generation, GenerationBase, ModelInfo

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
        max_retries: retries of a failed request. GETs are retried on connection errors,
            408, 429 and 5xx; a submit only when it surely never reached the server or got
            429, so a retry can never start a second paid job.

    Use as a context manager (or call ``close()``) to release connections::

        with kinema.Client() as client:
            video = client.videos.generate(model="pixverse/v5/image-to-video",
                                           image=Path("photo.png"), prompt="zoom in")
            video.download("out.mp4")
    """

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:  # fmt: skip
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.videos = Videos(self)
        self.models = Models(self)

    def close(self) -> None:
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
        value: Any = None
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                value = self._perform(effect, on_progress)
        finally:
            flow.close()

    def _perform(self, effect: Effect, on_progress: ProgressCallback | None) -> Any:
        if isinstance(effect, Send):
            return self._send_bounded(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
        elif isinstance(effect, Notify):
            if on_progress is not None and isinstance(effect.generation, Generation):
                on_progress(effect.generation)
        elif isinstance(effect, Fetch):
            return self._fetch(effect)
        return None

    def _send_bounded(self, effect: Send) -> Reply | Failure:
        if effect.deadline is None:
            return self._send(effect.request, self.timeout)
        left = remaining(effect.deadline)
        if left <= 0:
            return Failure(DEADLINE, False, "the deadline passed")
        # httpx timeouts bound each phase (connect, each read), not a whole request, so a
        # server trickling bytes could outlast any deadline. The request runs on a helper
        # thread that we stop waiting for at the deadline; its own timeout (capped to the
        # time left) then ends it shortly after.
        box: list[Reply | Failure | BaseException] = []
        done = threading.Event()
        timeout = request_timeout(self.timeout, effect.deadline)

        def work() -> None:
            try:
                box.append(self._send(effect.request, timeout))
            except BaseException as exc:  # handed to the caller's thread below
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="kinema-request", daemon=True).start()
        if not done.wait(left):
            return Failure(DEADLINE, True, "the deadline passed mid-request")
        outcome = box[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _send(self, request: ApiRequest, timeout: float | None) -> Reply | Failure:
        url = request.url(self.base_url)
        try:
            response = self._http.request(
                request.method, url, params=request.params,
                json=request.json, headers=self._api_headers, timeout=timeout,
            )  # fmt: skip
        except httpx.TransportError as exc:
            return classify(exc, url)
        return Reply(response.status_code, dict(response.headers.items()), response.content)

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


class Videos(VideosBase[Generation]):
    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._run = client._run

    def create(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, **fields: Any,
    ) -> Generation:  # fmt: skip
        """Submit a job; returns at once with its id and `queued` status.

        `fields` are the model's request fields (prompt, resolution, duration, ...).
        `image` / `audio` / `last_image` go to the model's image_url / audio_url /
        last_image_url; those (and the *_url fields themselves) take a URL, a data: URI,
        a local path (Path or str) or bytes, and local content is sent as a data: URI.
        The body is checked against the model's spec first: LocalValidationError (a
        BadRequestError) before any network call."""
        return self._run(self._create_flow(model, image, audio, last_image, fields))

    def get(self, generation_id: str) -> Generation:
        """One poll: the generation as the server sees it now."""
        return self._run(self._get_flow(generation_id))

    def wait(
        self, generation: str | GenerationBase, *, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None, poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Generation:  # fmt: skip
        """Poll until the job finishes; return it completed. Raises GenerationFailed
        (the server's error.name / message) or DeadlineExceeded once `timeout` seconds
        pass, in-flight requests included (the job keeps running). `on_progress` gets
        every poll's Generation (status, progress, queue_position)."""
        return self._run(self._wait_flow(generation, timeout, poll_interval), on_progress)

    def generate(
        self, model: str, *, image: MediaInput | None = None, audio: MediaInput | None = None,
        last_image: MediaInput | None = None, timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL, **fields: Any,
    ) -> Generation:  # fmt: skip
        """`create` + `wait` under one deadline of `timeout` seconds (submit included)."""
        flow = self._generate_flow(model, image, audio, last_image, fields, timeout, poll_interval)
        return self._run(flow, on_progress)

    def download(self, generation: str | GenerationBase, path: str | Path | None = None) -> Path:
        """Stream a completed generation's video to `path` (see Generation.download)."""
        return self._run(self._download_flow(generation, path))


class Models(ModelsBase):
    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._run = client._run

    def list(self) -> builtins.list[ModelInfo]:
        """The server's catalogue: each model's id, route, fields and prices."""
        return self._run(self._list_flow())
