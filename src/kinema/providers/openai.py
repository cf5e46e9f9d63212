"""`openai`: any server speaking OpenAI's Videos API (`/v1/videos`: OpenAI itself,
vLLM-Omni, SGLang Diffusion, FastVideo, LiteLLM): how a user's own GPU box joins.

- create: `POST /v1/videos`, JSON `{model, prompt, seconds, size}`, or multipart with the
  same fields plus an `input_reference` file when the request has an image;
- retrieve: `GET /v1/videos/{id}` -> `{id, object: "video", status: queued | in_progress |
  completed | failed, progress: 0-100, error: {code, message}}`;
- content: `GET /v1/videos/{id}/content` (the MP4, with the key);
- delete: `DELETE /v1/videos/{id}` (after mirroring, and to cancel: there is no cancel).

`seconds` is sent as a string and `size` as "WIDTHxHEIGHT", as OpenAI documents. The API
has no idempotency key, so a submit interrupted after it was sent is never re-sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import httpx

from kinema.errors import ConfigError
from kinema.media.sniff import sniff_image
from kinema.providers.base import (
    Done,
    Hooks,
    Pending,
    Provider,
    Retryable,
    UpstreamOptions,
    body_json,
    generation_failed,
    job_lost,
)
from kinema.render_request import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, RenderRequest

# Our model id -> fields for /v1/videos (overridable per upstream with `models`).
FIELD_MAP: dict[str, dict[str, Any]] = {}


def size_of(request: RenderRequest) -> str:
    from kinema.media.images import output_size

    aspect = request.aspect or "16:9"
    width, height = output_size(request.short_side, aspect, (), 16, 9)
    return f"{width}x{height}"


class OpenAIVideosProvider(Provider):
    kind: ClassVar[str] = "openai"
    capabilities: ClassVar[frozenset[str]] = frozenset({TEXT_TO_VIDEO, IMAGE_TO_VIDEO})
    poll_seconds: ClassVar[float] = 5.0
    idempotent: ClassVar[bool] = False

    def __init__(self, name: str, options: UpstreamOptions) -> None:
        super().__init__(name, options)
        if not options.model and not options.models:
            raise ConfigError(
                f"upstream '{name}' (kind openai): set `model` (the server's model id)"
            )

    def fields(self, request: RenderRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": self.options.model, "prompt": request.prompt}
        if request.duration is not None:
            fields["seconds"] = str(round(request.duration))
        fields["size"] = size_of(request)
        return {**fields, **FIELD_MAP.get(request.model, {}), **self.overrides(request.model)}

    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        fields = self.fields(request)
        url = self.base_url + "/v1/videos"
        if request.image is None:
            response = await self.send(http, "POST", url, json=fields)
        else:
            image = await hooks.fetch(request.image)
            kind = sniff_image(image) or "png"
            files = {"input_reference": (f"input.{kind}", image, f"image/{kind}")}
            data = {k: str(v) for k, v in fields.items() if v is not None}
            response = await self.send(http, "POST", url, data=data, files=files)
        if response.status_code not in (200, 201, 202):
            raise Retryable(f"unexpected HTTP {response.status_code} to a create")
        data_ = body_json(response)
        if not isinstance(data_, dict) or not isinstance(data_.get("id"), str):
            raise Retryable("the create answer has no video id")
        if data_.get("status") == "failed":
            raise generation_failed(self.name, _error(data_))
        return {"id": data_["id"]}

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(http, "GET", f"{self.base_url}/v1/videos/{state['id']}")
        if response.status_code == 404:
            raise job_lost(self.name, state["id"])
        data = body_json(response)
        if not isinstance(data, dict) or "status" not in data:
            raise Retryable("the retrieve answer has no status")
        if data["status"] == "completed":
            return Done(url=None)
        if data["status"] == "failed":
            raise generation_failed(self.name, _error(data))
        progress = data.get("progress")
        return Pending(progress=progress / 100 if isinstance(progress, int | float) else None)

    async def download(
        self, http: httpx.AsyncClient, state: dict[str, Any], done: Done, target: Path
    ) -> None:
        url = f"{self.base_url}/v1/videos/{state['id']}/content"
        await self.stream_to(http, url, target, self.auth_headers())

    async def cancel(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        await self.send(http, "DELETE", f"{self.base_url}/v1/videos/{state['id']}")

    async def cleanup(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        await self.send(http, "DELETE", f"{self.base_url}/v1/videos/{state['id']}")


def _error(data: dict[str, Any]) -> str:
    error = data.get("error") or {}
    if isinstance(error, dict):
        return f"{error.get('code') or 'error'}: {error.get('message') or ''}"[:500]
    return str(error)[:500]
