"""`aimlapi`: the AI/ML API (https://api.aimlapi.com), whose wire Kinema itself speaks, so
also another Kinema server. Submit `POST /v2/video/generations` with the request's own
body (Bearer key, and an `Idempotency-Key` header), poll `GET
/v2/video/generations?generation_id=ID` (statuses queued, generating, completed, error;
`video.url`; `meta.usage.credits_used`), then download
`video.url`. The AI/ML API documents no cancel endpoint, so cancelling stops the wait only.

The AI/ML API documents no idempotency key either, so by default a submit interrupted
after it was sent is never re-sent (the job ends `UpstreamOutcomeUnknown`, never a second
paid job). A Kinema back server does honour `Idempotency-Key` (a re-sent submit returns
the same generation): set `"idempotent": true` on such an upstream.

With `"passthrough": true` the upstream also takes jobs for any of the AI/ML API's other
video models (ones Kinema has no spec for): their body goes to the upstream exactly as
the client sent it (`kinema.specs.passthrough`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import Field, StrictBool

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
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    LIP_SYNC_TTS,
    TALKING_HEAD,
    TEXT_TO_VIDEO,
    RenderRequest,
)
from kinema.specs.passthrough import PASSTHROUGH

SUBMIT_PATH = "/v2/video/generations"

# Our model id -> the AI/ML API's fields (the same ids on both sides: nothing to rename).
# Operators override per model with the upstream's `models` option, e.g. to send
# video-01 as {"model": "minimax/hailuo-02"}.
FIELD_MAP: dict[str, dict[str, Any]] = {}


class AimlApiOptions(UpstreamOptions):
    passthrough: StrictBool = Field(
        default=False,
        description="Also take any other AI/ML API video model id, its body forwarded as-is.",
    )


class AimlApiProvider(Provider):
    kind: ClassVar[str] = "aimlapi"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, TALKING_HEAD, LIP_SYNC_TTS, DIALOGUE}
    )
    poll_seconds: ClassVar[float] = 10.0  # the AI/ML API's examples poll every 10 s
    idempotent: ClassVar[bool] = False  # see the module docstring; Kinema backs: set it

    def body(self, request: RenderRequest, hooks: Hooks) -> dict[str, Any]:
        if request.capability == PASSTHROUGH and hooks.params is not None:
            body = dict(hooks.params)  # exactly what the client sent (nulls included)
        elif hooks.params is not None:
            body = {k: v for k, v in hooks.params.items() if v is not None}
        else:
            body = {"model": request.model, "prompt": request.prompt}
            if request.image is not None:
                body[request.image.field] = request.image.url
            if request.duration is not None:
                body["duration"] = request.duration
        return {**body, **FIELD_MAP.get(request.model, {}), **self.overrides(request.model)}

    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        response = await self.send(
            http, "POST", self.base_url + SUBMIT_PATH, json=self.body(request, hooks),
            headers={"Idempotency-Key": idempotency_key},
        )  # fmt: skip
        if response.status_code not in (200, 201, 202):
            raise Retryable(f"unexpected HTTP {response.status_code} to a submit")
        data = body_json(response)
        upstream_id = (
            data.get("id") or data.get("generation_id") if isinstance(data, dict) else None
        )
        if not isinstance(upstream_id, str):
            raise Retryable("the submit answer has no generation id")
        return {"id": upstream_id}

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(
            http, "GET", self.base_url + SUBMIT_PATH, params={"generation_id": state["id"]}
        )
        if response.status_code == 404:
            raise job_lost(self.name, state["id"])
        data = body_json(response)
        if not isinstance(data, dict) or "status" not in data:
            raise Retryable("the poll answer has no status")
        status = data["status"]
        if status == "completed":
            video = data.get("video") or {}
            usage = (data.get("meta") or {}).get("usage") or {}
            return Done(url=video.get("url"), cost={"credits_used": usage.get("credits_used")})
        if status in ("error", "failed"):  # "failed": some of its models say so
            error = data.get("error") or {}
            if not isinstance(error, dict):  # a bare message
                error = {"message": str(error)}
            name = error.get("name", "Error")
            message = f"{name}: {error.get('message', '')}"[:500]
            raise generation_failed(self.name, self.scrub(message))
        progress = data.get("progress")
        return Pending(progress=progress / 100 if isinstance(progress, int | float) else None)
