"""`replicate`: the Replicate predictions API (https://api.replicate.com), Bearer token.

- create: `POST /v1/models/{owner}/{name}/predictions` with `{"input": {...}}` (an official
  model), or `POST /v1/predictions` with `{"version", "input"}` when the mapping names a
  `version`; answers 201 with the prediction `{id, status: starting, urls: {get, cancel},
  ...}`. `Prefer: wait=N` (the upstream's `wait_seconds`) holds the create open up to N s;
  off by default, since video takes minutes and a long-held create only widens the
  window in which a dropped connection leaves the outcome unknown;
- get: `GET /v1/predictions/{id}` -> `status: starting | processing | succeeded | failed |
  canceled | aborted`, `output` (the file URL, or a list of them), `error`,
  `metrics: {predict_time, total_time}`;
- cancel: `POST /v1/predictions/{id}/cancel`.

Input refusals are 422 `{detail, invalid_fields: [{field, description}]}`. Replicate
documents no idempotency key, so an interrupted create is never re-sent. Output files
(replicate.delivery) are fetched without the key. The prediction's `metrics` are kept on
the job row as the provider's reported cost.
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
    IMAGE_TO_VIDEO,
    TALKING_HEAD,
    TEXT_TO_VIDEO,
    RenderRequest,
)

_VEO = {
    "prompt": "prompt", "image": "image", "duration": "duration", "resolution": "resolution",
    "aspect_ratio": "aspect", "generate_audio": "generate_audio",
    "negative_prompt": "negative_prompt", "seed": "seed",
}  # fmt: skip

# Our model id -> Replicate model (`model`, "owner/name"; or a `version` id) and input
# field -> our request value (see `base.request_value`); `input` adds constants.
FIELD_MAP: dict[str, dict[str, Any]] = {
    "google/veo-3.1-i2v-fast": {"model": "google/veo-3.1-fast", "fields": _VEO},
    "google/veo-3.1-lite-generate-001": {"model": "google/veo-3.1-fast", "fields": _VEO},
    "video-01": {
        "model": "minimax/video-01",
        "fields": {"prompt": "prompt", "first_frame_image": "image"},
        "input": {"prompt_optimizer": True},
    },
    "pixverse/v5/image-to-video": {
        "model": "pixverse/pixverse-v5",
        "fields": {
            "prompt": "prompt", "image": "image", "duration": "duration",
            "quality": "resolution", "aspect_ratio": "aspect",
            "negative_prompt": "negative_prompt", "seed": "seed",
        },
    },
    "veed/fabric-1.0": {
        "model": "veed/fabric-1.0",
        "fields": {"image": "image", "audio": "audio", "resolution": "resolution"},
    },
}  # fmt: skip
FIELD_MAP["veo-3.1-lite-generate-001"] = FIELD_MAP["google/veo-3.1-lite-generate-001"]


class ReplicateProvider(Provider):
    key_on_downloads: ClassVar[bool] = False  # output files are fetched without it
    kind: ClassVar[str] = "replicate"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, DIALOGUE, TALKING_HEAD}
    )
    # Replicate's clients poll every 0.5 s; video takes minutes, so 2 s is plenty.
    poll_seconds: ClassVar[float] = 2.0
    idempotent: ClassVar[bool] = False

    def _own(self, url: Any) -> bool:
        return isinstance(url, str) and urlsplit(url).netloc == urlsplit(self.base_url).netloc

    def create_of(self, request: RenderRequest) -> tuple[str, dict[str, Any]]:
        entry = model_entry(self, FIELD_MAP, request)
        body: dict[str, Any] = {"input": mapped_input(entry, request)}
        if entry.get("version"):
            body["version"] = entry["version"]
            return f"{self.base_url}/v1/predictions", body
        model = app_for(entry, request, "model").strip("/")
        return f"{self.base_url}/v1/models/{model}/predictions", body

    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        url, body = self.create_of(request)
        wait = self.options.wait_seconds
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        response = await self.send(http, "POST", url, json=body, headers=headers)
        if response.status_code not in (200, 201, 202):
            raise Retryable(f"unexpected HTTP {response.status_code} to a create")
        data = body_json(response)
        prediction_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(prediction_id, str):
            raise Retryable("the create answer has no prediction id")
        if data.get("status") == "failed":
            raise generation_failed(self.name, self.scrub(str(data.get("error") or "failed")))
        urls = data.get("urls") if isinstance(data.get("urls"), dict) else {}
        get = f"{self.base_url}/v1/predictions/{prediction_id}"
        state = {"id": prediction_id, "get": get, "cancel": f"{get}/cancel"}
        for name in ("get", "cancel"):
            if self._own(urls.get(name)):
                state[name] = urls[name]
        return state

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(http, "GET", state["get"])
        if response.status_code == 404:
            raise job_lost(self.name, state["id"])
        data = body_json(response)
        if not isinstance(data, dict) or "status" not in data:
            raise Retryable("the prediction has no status")
        status = data["status"]
        if status in ("starting", "processing"):
            return Pending()
        if status == "succeeded":
            metrics = data.get("metrics")
            return Done(url=_output_url(data.get("output")),
                        cost={"metrics": metrics} if metrics else None)  # fmt: skip
        if status in ("failed", "canceled", "aborted"):
            why = data.get("error") or status
            raise generation_failed(self.name, self.scrub(f"{status}: {why}")[:500])
        raise Retryable(f"unknown prediction status {status!r}")

    async def cancel(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        await self.send(http, "POST", state["cancel"])


def _output_url(output: Any) -> str | None:
    if isinstance(output, list):
        output = next((item for item in output if isinstance(item, str)), None)
    if isinstance(output, dict):
        output = output.get("video") or output.get("url")
    return output if isinstance(output, str) else None
