"""The OpenAI Videos routes beside the poll (`GET /v1/videos/{id}` is answered on the poll
fast path, see `OpenAIDialect.render_poll`): create, list, delete (which also cancels a
queued or running video, as vLLM-Omni does), content (video, thumbnail, spritesheet, the
last two made on first request; Range supported), remix, extensions; edits and
characters are refused with a 400."""

from __future__ import annotations

import dataclasses
from contextlib import suppress
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kinema.dialects.aimlapi_lifecycle import submit_options
from kinema.dialects.openai_docs import MAX_PROMPT
from kinema.dialects.openai_io import (
    ascending,
    ensure_posters,
    fetched,
    image_size,
    inline_size,
    last_frame_uri,
    only,
    read_payload,
    required,
    upload,
)
from kinema.dialects.openai_jobs import expected_size, extension_body, remix_body, rendered
from kinema.dialects.openai_models import (
    OpenAIVideo,
    OpenAIVideoDeleted,
    OpenAIVideoList,
    error_responses,
)
from kinema.dialects.openai_params import UNIFIED, create_body, media_reference, problem
from kinema.errors import Conflict, NotFound
from kinema.jobs import lifecycle
from kinema.jobs.model import PENDING, Status
from kinema.media.poster_store import PosterMaker
from kinema.storage import LocalStorage

if TYPE_CHECKING:
    from kinema.dialects.openai import OpenAIDialect

MEDIA = (
    ("input_reference", "image"), ("image_reference", "image"), ("last_frame", "image"),
    ("audio_reference", "audio"),
)  # fmt: skip
VARIANTS = {
    "video": ("key", "video/mp4"),
    "thumbnail": ("thumbnail_key", "image/webp"),
    "spritesheet": ("spritesheet_key", "image/jpeg"),
}
MAX_LIST = 100
VideoId = Annotated[str, PathParam(min_length=1, max_length=200)]
UNSUPPORTED = (
    "{what} are not supported: no backend of this deployment offers them (Kinema renders "
    "with local engines and upstreams that make new videos: create, remix, extensions)."
)


# ---------------------------------------------------------------------------- routes
def router(dialect: OpenAIDialect) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["OpenAI Videos"])
    settings, store, storage, auth = (
        dialect.settings, dialect.store, dialect.storage, dialect.auth,
    )  # fmt: skip
    max_part = settings.max_body_bytes
    posters = PosterMaker(storage)

    async def submit(
        request: Request, route: str, body: dict[str, Any], key_id: str, extras: dict[str, Any]
    ) -> JSONResponse:
        options = dataclasses.replace(submit_options(request, settings), extras=extras)
        made = await run_in_threadpool(dialect.submit, route, body, key_id, options)
        request.state.inference_id = made.job.id
        headers = {"Idempotent-Replayed": "true"} if made.replayed else {}
        return JSONResponse(dialect.video(made.job), headers=headers)

    @api.post(
        "/videos", summary="Create a video", response_model=OpenAIVideo,
        responses=error_responses(400, 401, 409, 413, 429, 503),
        description="JSON or multipart/form-data (`input_reference` as an image file). "
        "`model` is any Kinema model id or an operator alias (`sora-2` by default); "
        "`seconds` and `size` map onto the model's durations, resolutions and aspects.",
    )  # fmt: skip
    async def create(request: Request) -> JSONResponse:
        key = await run_in_threadpool(auth, request)
        payload, uploads = await read_payload(request, max_part)
        media: dict[str, str] = {}
        image: tuple[int, int] | None = None
        for param, kind in MEDIA:
            uploaded = uploads.pop(param, None)
            if uploaded is not None:
                limit = settings.max_input_bytes
                media[param], data = await upload(uploaded, param, kind, limit)
                if param in ("input_reference", "image_reference"):
                    image = image_size(data)
            elif payload.get(param) is not None:
                media[param] = media_reference(payload[param], param, kind)
                if param in ("input_reference", "image_reference"):
                    image = inline_size(media[param], settings.max_input_bytes)
            payload.pop(param, None)
        for name in uploads:
            raise problem(name, f"Unknown parameter: '{name[:60]}' (an uploaded file).")
        if "input_reference" in media and "image_reference" in media:
            raise problem("image_reference", "Send input_reference or image_reference, not both.")
        name, cls, body = create_body(payload, dialect.aliases, media)
        request_model = rendered(UNIFIED, cls.MODEL_IDS[0], body)
        extras: dict[str, Any] = {"model": name}
        if payload.get("size") is not None:
            extras["size"] = str(payload["size"])
        elif request_model is not None:
            extras["size"] = expected_size(request_model, image)
        if payload.get("seconds") is not None:
            extras["seconds"] = str(payload["seconds"]).strip()
        if "prompt" not in body:  # the model takes none (its video follows the audio)
            extras["prompt"] = payload["prompt"]
        return await submit(request, cls.ROUTE.name, body, key.id, extras)

    @api.get(
        "/videos", summary="List videos", response_model=OpenAIVideoList,
        responses=error_responses(400, 401, 404, 503),
        description="The key's videos, newest first (`order=asc`: oldest first); pass "
        "`last_id` as `after` for the next page. Generations made through `/v2` are listed "
        "too.",
    )  # fmt: skip
    def list_videos(
        request: Request,
        after: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
        order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    ) -> JSONResponse:
        key = auth(request)
        boundary = None
        if after is not None:
            found = store.get_status(after, key.id)
            if found is None:
                raise NotFound(f"No video '{after[:200]}' to page after (deleted, or not yours).")
            boundary = found.seq
        if order == "desc":
            page = store.list_jobs(key.id, limit=limit + 1, before_seq=boundary)
        else:
            page = ascending(store, key.id, limit, boundary)
        more, page = len(page) > limit, page[:limit]
        data = [dialect.video(job) for job in page]
        return JSONResponse({
            "object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more,
        })  # fmt: skip

    @api.delete(
        "/videos/{video_id}", summary="Delete a video", response_model=OpenAIVideoDeleted,
        responses=error_responses(400, 401, 404, 503),
        description="Deletes the video, its thumbnail and spritesheet; a queued or running "
        "one is cancelled first (never charged). The id then answers 404 on both dialects.",
    )  # fmt: skip
    def delete(request: Request, video_id: VideoId) -> JSONResponse:
        key = auth(request)
        job = store.get_status(video_id, key.id)
        if job is None:
            raise NotFound(f"Video '{video_id}' was not found.")
        if job.status in PENDING:
            with suppress(Conflict, NotFound):  # it finished (or went) meanwhile
                lifecycle.cancel(store, video_id, key.id)
        gone = lifecycle.delete_generation(store, storage, video_id, key.id)
        dialect.forget(video_id)
        if gone is None:
            raise NotFound(f"Video '{video_id}' was not found.")
        return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})

    @api.get(
        "/videos/{video_id}/content", summary="Download a video's content",
        response_class=Response, responses={
            200: {"description": "The bytes (Range requests supported).", "content": {
                mime: {"schema": {"type": "string", "format": "binary"}}
                for _, mime in VARIANTS.values()
            }},
            **error_responses(400, 401, 404, 503),
        },
    )  # fmt: skip
    async def content(
        request: Request,
        video_id: VideoId,
        variant: Annotated[Literal["video", "thumbnail", "spritesheet"], Query()] = "video",
    ) -> Response:
        key = await run_in_threadpool(auth, request)
        job = await run_in_threadpool(store.get_job, video_id, key.id)
        if job is None:
            raise NotFound(f"Video '{video_id}' was not found.")
        if job.status != Status.COMPLETED or not isinstance(job.output, dict):
            state = dialect.video(job)["status"]
            raise NotFound(f"Video '{video_id}' has no content: it is {state}.")
        field, mime = VARIANTS[variant]
        blob = job.output.get(field)
        if not isinstance(blob, str):
            raise NotFound(f"Video '{video_id}' has no {variant} (it was made before they were).")
        poster = variant != "video"  # made on its first request, stored for the next
        if isinstance(storage, LocalStorage):
            path = storage.path(blob)
            if poster and not path.is_file():
                await ensure_posters(posters, store, video_id, job.output, variant)
            if not path.is_file():
                raise NotFound(f"Video '{video_id}' has no {variant} any more.")
            return FileResponse(path, media_type=mime)
        url = storage.url(blob, 300, str(request.base_url))
        found = await fetched(url, request, mime)
        if found is None and poster:
            await ensure_posters(posters, store, video_id, job.output, variant)
            found = await fetched(url, request, mime)
        if found is None:
            raise NotFound(f"Video '{video_id}' has no {variant} any more.")
        return found

    @api.post(
        "/videos/{video_id}/remix", summary="Remix a video", response_model=OpenAIVideo,
        responses=error_responses(400, 401, 404, 409, 413, 429, 503),
        description="A new video from the same inputs with a new `prompt` (on local engines "
        "that changes the camera move or the dialogue); `remixed_from_video_id` is set.",
    )  # fmt: skip
    async def remix(request: Request, video_id: VideoId) -> JSONResponse:
        key = await run_in_threadpool(auth, request)
        payload, _ = await read_payload(request, max_part)
        only(payload, "prompt")
        prompt = required(payload, "prompt")
        if not isinstance(prompt, str):
            raise problem("prompt", "Invalid type for 'prompt': expected a string.")
        if len(prompt) > MAX_PROMPT:
            raise problem("prompt", f"'prompt' is longer than {MAX_PROMPT} characters.")
        source = await run_in_threadpool(store.get_job, video_id, key.id)
        if source is None:
            raise NotFound(f"Video '{video_id}' was not found.")
        body, extras = remix_body(
            source.route, source.model, source.params, source.extras, source.id, prompt
        )
        return await submit(request, source.route, body, key.id, extras)

    @api.post(
        "/videos/extensions", summary="Extend a video", response_model=OpenAIVideo,
        responses=error_responses(400, 401, 404, 409, 413, 429, 503),
        description="Continues a completed video from its last frame for `seconds` more "
        "with a new `prompt`; delivered stitched, so `seconds` is the total.",
    )  # fmt: skip
    async def extend(request: Request) -> JSONResponse:
        key = await run_in_threadpool(auth, request)
        payload, uploads = await read_payload(request, max_part)
        if "video" in uploads:
            raise problem("video", "Uploading a video to extend is not supported: pass "
                          "{'id': <a completed video's id>}.")  # fmt: skip
        only(payload, "prompt", "seconds", "video")
        prompt, seconds, video = (required(payload, n) for n in ("prompt", "seconds", "video"))
        source_id = video.get("id") if isinstance(video, dict) else video
        if not isinstance(source_id, str) or not source_id or not isinstance(prompt, str):
            raise problem("video", "Invalid value: expected {'id': <a completed video's id>}.")
        source = await run_in_threadpool(store.get_job, source_id, key.id)
        if source is None:
            raise NotFound(f"Video '{source_id}' was not found.")
        output = source.output
        if source.status != Status.COMPLETED or not isinstance(output, dict):
            state = dialect.video(source)["status"]
            raise Conflict(
                f"Video '{source_id}' is {state}: only a completed video can be extended."
            )
        static = dialect.static_of(source)
        try:
            frame = await run_in_threadpool(last_frame_uri, storage, output["key"])
        except FileNotFoundError:
            raise NotFound(f"Video '{source_id}' has no content any more.") from None
        body, extras = extension_body(
            source.route, source.model, source.params, static, source.id, output["key"],
            f"{output['width']}x{output['height']}", seconds, prompt, frame,
        )  # fmt: skip
        return await submit(request, source.route, body, key.id, extras)

    def refuse(what: str) -> Any:
        async def refused(request: Request) -> JSONResponse:
            await run_in_threadpool(auth, request)
            raise problem(what.lower(), UNSUPPORTED.format(what=what))

        refused.__name__ = f"refuse_{what.lower()}"
        return refused

    for path, what, methods in (
        ("/videos/edits", "Edits", ["POST"]),
        ("/videos/characters", "Characters", ["POST"]),
        ("/videos/characters/{character_id}", "Characters", ["GET"]),
    ):
        # Always a 400 naming what is missing; kept out of /openapi.json (not a feature).
        api.add_api_route(path, refuse(what), methods=methods, include_in_schema=False)
    return api
