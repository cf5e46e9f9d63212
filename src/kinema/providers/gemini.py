"""`gemini`: Veo through the Gemini API (https://generativelanguage.googleapis.com),
key in the `x-goog-api-key` header.

- submit: `POST /v1beta/models/{model}:predictLongRunning` with `{"instances": [{prompt,
  image: {bytesBase64Encoded, mimeType}, lastFrame: {...}}], "parameters": {aspectRatio,
  durationSeconds, resolution, negativePrompt, personGeneration, seed}}` -> an operation
  `{name: "models/{model}/operations/{id}"}`;
- poll: `GET /v1beta/{name}` -> `{done: false}` until `{done: true, response:
  {generateVideoResponse: {generatedSamples: [{video: {uri}}], raiMediaFilteredCount,
  raiMediaFilteredReasons}}}` or `{done: true, error: {code, message}}`;
- download: `GET {uri}` with the key; it redirects to the file's storage, which Kinema
  follows *without* the key (httpx only strips `Authorization` on a redirect).

Refusals are `{"error": {code, message, status: INVALID_ARGUMENT}}`; 429
`RESOURCE_EXHAUSTED` "quota" answers are quota errors. The Gemini API has no idempotency
key and documents no cancel for video operations (cancelling stops the wait only), and
reports no cost per operation. Images are sent inline (fetched by Kinema, base64).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from kinema.media.sniff import sniff_image
from kinema.providers.base import (
    Done,
    Hooks,
    Pending,
    Provider,
    ResultExpired,
    Retryable,
    app_for,
    body_json,
    generation_failed,
    job_lost,
    mapped_input,
    model_entry,
    retry_after,
)
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    MediaRef,
    RenderRequest,
)

API = "/v1beta"
_PARAMETERS = {
    "aspectRatio": "aspect", "durationSeconds": "duration", "resolution": "resolution",
    "negativePrompt": "negative_prompt", "personGeneration": "person_generation",
    "seed": "seed",
}  # fmt: skip

# Our model id -> Gemini model (`model`) and `parameters` field -> our request value (in
# `fields`, see `base.request_value`; `input` adds constant parameters). Veo Lite is the
# Gemini API's `veo-3.1-lite-generate-preview` (text or one image); a first + last frame
# request goes to Veo 3.1 Fast (`model_last`), which takes `lastFrame`. Override with
# `models`.
FIELD_MAP: dict[str, dict[str, Any]] = {
    "google/veo-3.1-i2v-fast": {"model": "veo-3.1-fast-generate-preview", "fields": _PARAMETERS},
    "google/veo-3.1-lite-generate-001": {
        "model": "veo-3.1-lite-generate-preview",
        "model_last": "veo-3.1-fast-generate-preview", "fields": _PARAMETERS,
    },
    "google/veo-3.1-first-last-image-to-video-fast": {
        "model": "veo-3.1-fast-generate-preview", "fields": _PARAMETERS,
    },
}  # fmt: skip
FIELD_MAP["veo-3.1-lite-generate-001"] = FIELD_MAP["google/veo-3.1-lite-generate-001"]
FIELD_MAP["google/veo-3-1-lite-generate-preview"] = FIELD_MAP["google/veo-3.1-lite-generate-001"]


class GeminiProvider(Provider):
    kind: ClassVar[str] = "gemini"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, DIALOGUE}
    )
    poll_seconds: ClassVar[float] = 10.0  # the Gemini API's Veo examples poll every 10 s
    idempotent: ClassVar[bool] = False

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.options.api_key} if self.options.api_key else {}

    async def _inline(self, hooks: Hooks, ref: MediaRef) -> dict[str, str]:
        data = await hooks.fetch(ref)
        kind = sniff_image(data) or "png"
        return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": f"image/{kind}"}

    async def submit(
        self, http: httpx.AsyncClient, request: RenderRequest, hooks: Hooks, idempotency_key: str
    ) -> dict[str, Any]:
        entry = model_entry(self, FIELD_MAP, request)
        model = app_for(entry, request, "model").removeprefix("models/")
        instance: dict[str, Any] = {"prompt": request.prompt}
        if request.image is not None:
            instance["image"] = await self._inline(hooks, request.image)
        if request.last_image is not None:
            instance["lastFrame"] = await self._inline(hooks, request.last_image)
        body = {"instances": [instance], "parameters": mapped_input(entry, request)}
        url = f"{self.base_url}{API}/models/{model}:predictLongRunning"
        response = await self.send(http, "POST", url, json=body)
        if response.status_code != 200:
            raise Retryable(f"unexpected HTTP {response.status_code} to a submit")
        data = body_json(response)
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or "/operations/" not in name:
            raise Retryable("the submit answer names no operation")
        return {"id": name}

    async def poll(self, http: httpx.AsyncClient, state: dict[str, Any]) -> Pending | Done:
        response = await self.send(http, "GET", f"{self.base_url}{API}/{state['id']}")
        if response.status_code == 404:
            raise job_lost(self.name, state["id"])
        data = body_json(response)
        if not isinstance(data, dict):
            raise Retryable("the operation is not an object")
        if not data.get("done"):
            return Pending()
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("status") or error.get("code") or "error"
            why = f"{code}: {error.get('message', '')}"
            raise generation_failed(self.name, self.scrub(why)[:500])
        result = (data.get("response") or {}).get("generateVideoResponse") or {}
        samples = result.get("generatedSamples") or []
        uri = ((samples[0] if samples else {}).get("video") or {}).get("uri")
        if not uri:
            reasons = "; ".join(map(str, result.get("raiMediaFilteredReasons") or []))
            if result.get("raiMediaFilteredCount"):
                raise generation_failed(self.name, f"filtered by safety rules: {reasons}"[:500])
            raise generation_failed(self.name, "the operation finished without a video")
        return Done(url=uri)

    async def download(
        self, http: httpx.AsyncClient, state: dict[str, Any], done: Done, target: Path
    ) -> None:
        from kinema.inputs import check_url

        url = done.url
        if url is None:
            raise generation_failed(self.name, "it reported completion but no video URI")
        if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            check_url(url, "upstream output", self.policy)
            await self.stream_to(http, url, target, {})
            return
        # The key goes to the API's own host only; its redirect is followed without it.
        try:
            async with http.stream(
                "GET", url, headers=self.auth_headers(),
                timeout=self.options.request_timeout_seconds, follow_redirects=False,
            ) as response:  # fmt: skip
                status = response.status_code
                location = response.headers.get("location")
                if status in (403, 404, 410):
                    raise ResultExpired(f"HTTP {status}")
                if status == 429 or status >= 500:
                    raise Retryable(f"HTTP {status}", retry_after(response))
        except httpx.TransportError as exc:
            raise Retryable(f"download failed: {type(exc).__name__}") from None
        if response.is_redirect and location:
            target_url = urljoin(url, location)
            if urlsplit(target_url).netloc != urlsplit(self.base_url).netloc:
                check_url(target_url, "upstream output", self.policy)
            await self.stream_to(http, target_url, target, {})
        else:
            await self.stream_to(http, url, target, self.auth_headers())
