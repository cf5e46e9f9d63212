"""`fal`: the fal queue API (https://queue.fal.run), `Authorization: Key <key>`.

- submit: `POST {base}/{app id}` with the model's input as the JSON body -> `{request_id,
  status_url, response_url, cancel_url, queue_position}`. The status, result and cancel
  URLs use only the app's owner/name (not an endpoint sub-path such as
  `/image-to-video`); fal says to use the URLs it returns, so Kinema records them (when
  they are on the queue's own host; otherwise it builds them from the owner/name);
- status: `GET status_url` -> 202 `{status: IN_QUEUE | IN_PROGRESS, queue_position}`, then
  200 `{status: COMPLETED, metrics: {inference_time}}` (`error`/`error_type` when the
  request failed);
- result: `GET response_url` -> the model's output (`{video: {url}}`), or the model's error
  (422 with FastAPI-style `detail: [{loc, msg}]` for an input it refused);
- cancel: `PUT cancel_url` -> 202 `CANCELLATION_REQUESTED` (400 once completed).

fal documents no idempotency key, so a submit interrupted after it was sent is not re-sent
(the job ends `UpstreamOutcomeUnknown`). The queue retries runner failures itself. fal's
`metrics` (inference time) are kept on the job row as the provider's reported cost.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from kinema.providers.base import (
    Done,
    Hooks,
    Pending,
    Provider,
    Retryable,
    app_for,
    body_json,
    generation_failed,
    job_lost,
    mapped_input,
    model_entry,
)
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    TALKING_HEAD,
    TEXT_TO_VIDEO,
    RenderRequest,
)

_VEO = {
    "prompt": "prompt", "image_url": "image", "duration": "duration_s",
    "aspect_ratio": "aspect", "resolution": "resolution", "generate_audio": "generate_audio",
    "negative_prompt": "negative_prompt", "seed": "seed",
}  # fmt: skip
# fal's first-last-frame apps name the two frames `first_frame_url` / `last_frame_url`.
_VEO_FIRST_LAST = {
    **{k: v for k, v in _VEO.items() if k != "image_url"},
    "first_frame_url": "image", "last_frame_url": "last_image",
}  # fmt: skip

# Our model id -> fal app id (`app`; `app_image` when the request has an image) and
# fal input field -> our request value (see `base.request_value`); `input` adds constant
# fields. Override per upstream: {"models": {"video-01": {"app": "...", "input": {...}}}}.
FIELD_MAP: dict[str, dict[str, Any]] = {
    "google/veo-3.1-i2v-fast": {
        "app": "fal-ai/veo3.1/fast/image-to-video", "fields": _VEO,
    },
    "google/veo-3.1-lite-generate-001": {
        "app": "fal-ai/veo3.1/lite", "app_image": "fal-ai/veo3.1/lite/image-to-video",
        "app_last": "fal-ai/veo3.1/lite/first-last-frame-to-video",
        "fields": _VEO, "fields_last": _VEO_FIRST_LAST,
    },
    "google/veo-3.1-first-last-image-to-video-fast": {
        "app": "fal-ai/veo3.1/fast/first-last-frame-to-video",
        "app_last": "fal-ai/veo3.1/fast/first-last-frame-to-video",
        "fields": _VEO_FIRST_LAST, "fields_last": _VEO_FIRST_LAST,
    },
    "video-01": {
        "app": "fal-ai/minimax/video-01", "app_image": "fal-ai/minimax/video-01/image-to-video",
        "fields": {"prompt": "prompt", "image_url": "image"},
        "input": {"prompt_optimizer": True},
    },
    "pixverse/v5/image-to-video": {
        "app": "fal-ai/pixverse/v5/image-to-video",
        "fields": {
            "prompt": "prompt", "image_url": "image", "duration": "duration_str",
            "resolution": "resolution", "aspect_ratio": "aspect",
            "negative_prompt": "negative_prompt", "style": "style", "seed": "seed",
        },
    },
    "veed/fabric-1.0": {
        "app": "veed/fabric-1.0",
        "fields": {"image_url": "image", "audio_url": "audio", "resolution": "resolution"},
    },
    "veed/fabric-1.0-fast": {
        "app": "veed/fabric-1.0/fast",
        "fields": {"image_url": "image", "audio_url": "audio", "resolution": "resolution"},
    },
}  # fmt: skip
FIELD_MAP["veo-3.1-lite-generate-001"] = FIELD_MAP["google/veo-3.1-lite-generate-001"]
FIELD_MAP["google/veo-3-1-lite-generate-preview"] = FIELD_MAP["google/veo-3.1-lite-generate-001"]


class FalProvider(Provider):
    key_on_downloads: ClassVar[bool] = False  # output files are fetched without it
    kind: ClassVar[str] = "fal"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, DIALOGUE, TALKING_HEAD}
    )
    # fal's clients poll every 0.5 s; video jobs take minutes, so 2 s is plenty.
    poll_seconds: ClassVar[float] = 2.0
    idempotent: ClassVar[bool] = False

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.options.api_key}"} if self.options.api_key else {}

    def request_of(self, request: RenderRequest) -> tuple[str, dict[str, Any]]:
        entry = model_entry(self, FIELD_MAP, request)
        return app_for(entry, request).strip("/"), mapped_input(entry, request)

    def _own(self, url: Any) -> bool:
        return isinstance(url, str) and urlsplit(url).netloc == urlsplit(self.base_url).netloc

    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        app, body = self.request_of(request)
        response = await self.send(http, "POST", f"{self.base_url}/{app}", json=body)
        if response.status_code not in (200, 201, 202):
            raise Retryable(f"unexpected HTTP {response.status_code} to a submit")
        data = body_json(response)
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str):
            raise Retryable("the submit answer has no request_id")
        root = f"{self.base_url}/{'/'.join(app.split('/')[:2])}/requests/{request_id}"
        urls = {
            "status_url": f"{root}/status", "response_url": root, "cancel_url": f"{root}/cancel",
        }  # fmt: skip
        for name in urls:
            if self._own(data.get(name)):
                urls[name] = data[name]
        return {"id": request_id, "app": app, **urls}

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(http, "GET", state["status_url"])
        if response.status_code == 404:
            raise job_lost(self.name, state["id"])
        data = body_json(response)
        if not isinstance(data, dict) or "status" not in data:
            raise Retryable("the status answer has no status")
        status = data["status"]
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return Pending()
        if status in ("FAILED", "CANCELED", "CANCELLED") or data.get("error"):
            kind = data.get("error_type") or status.lower()
            raise generation_failed(self.name, self.scrub(f"{kind}: {data.get('error', '')}"))
        if status != "COMPLETED":
            raise Retryable(f"unknown fal status {status!r}")
        result = await self.send(http, "GET", state["response_url"])
        if result.status_code == 404:
            raise job_lost(self.name, state["id"])
        if result.status_code != 200:
            raise Retryable(f"unexpected HTTP {result.status_code} to a result")
        output = body_json(result)
        metrics = data.get("metrics")
        return Done(url=_video_url(output), cost={"metrics": metrics} if metrics else None)

    async def cancel(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        await self.send(http, "PUT", state["cancel_url"])


def _video_url(output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    video = output.get("video")
    if video is None and isinstance(output.get("videos"), list) and output["videos"]:
        video = output["videos"][0]
    if isinstance(video, dict) and isinstance(video.get("url"), str):
        return str(video["url"])
    return video if isinstance(video, str) else None
