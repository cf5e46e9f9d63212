"""The async video routes: submit (POST) and poll (GET), on the unified path and on the two
legacy vendor paths. Statuses on the wire are exactly queued|generating|completed|error."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.auth import Authenticator
from kinema.errors import FieldProblem, NotFound, ValidationFailed
from kinema.settings import Settings
from kinema.storage import BlobStorage
from kinema.store import COMPLETED, ERROR, PENDING, Job, JobStore
from kinema.submission import Submitter

# route name -> path. Legacy paths come from the vendor-named API the docs still show.
PATHS = {
    "unified": "/v2/video/generations",
    "minimax": "/v2/generate/video/minimax/generation",
    "pixverse": "/v2/generate/video/pixverse/generation",
}
GENERATION_ID = Query(..., min_length=1, max_length=200, description="The generation id.")


def job_view(
    job: Job, storage: BlobStorage, base_url: str, ttl: int, position: int
) -> dict[str, Any]:
    """The poll response body for `job`; the video URL is signed afresh on every call."""
    credits = job.credits_used if job.credits_used is not None else job.price
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "model": job.model,
        "video": None,
        "error": None,
        "meta": {"usage": {"credits_used": credits}},
    }
    if job.status == COMPLETED and job.output:
        out = job.output
        body["video"] = {
            "url": storage.url(out["key"], ttl, base_url),
            "content_type": out["content_type"],
            "file_name": out["file_name"],
            "file_size": out["file_size"],
            "duration": out["duration"],
            "width": out["width"],
            "height": out["height"],
        }
    elif job.status == ERROR:
        body["error"] = {"name": job.error_name or "Error", "message": job.error_message or ""}
    if job.status in PENDING:
        body["progress"] = job.progress
        body["queue_position"] = position
    return body


def router(
    settings: Settings,
    store: JobStore,
    storage: BlobStorage,
    auth: Authenticator,
    submitter: Submitter,
) -> APIRouter:
    api = APIRouter(tags=["Video generations"])

    def base_url(request: Request) -> str:
        return settings.public_url or str(request.base_url)

    def make_submit(route: str) -> Any:
        async def submit(request: Request) -> JSONResponse:
            key = await run_in_threadpool(auth, request)
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValidationFailed(
                    [FieldProblem("body", f"request body is not valid JSON ({exc})")]
                ) from None
            if body is None:
                raise ValidationFailed([FieldProblem("body", "Required: a JSON object")])
            made = await run_in_threadpool(submitter.submit, route, body, key.id)
            job = made.job
            request.state.inference_id = job.id
            id_key = "generation_id" if route == "minimax" else "id"
            return JSONResponse(
                {id_key: job.id, "status": job.status,
                 "meta": {"usage": {"credits_used": job.price}}},
                status_code=201,
                headers={"x-aimlapi-credits-used": str(job.price)},
            )  # fmt: skip

        return submit

    def poll(request: Request, generation_id: str = GENERATION_ID) -> JSONResponse:
        key = auth(request)
        job = store.get_job(generation_id, key.id)
        if job is None:
            # Another key's generation is indistinguishable from a missing one.
            raise NotFound(f"Generation '{generation_id}' was not found.")
        request.state.inference_id = job.id
        position = store.queue_position(job)
        body = job_view(job, storage, base_url(request), settings.url_ttl_seconds, position)
        credits = body["meta"]["usage"]["credits_used"]
        return JSONResponse(body, headers={"x-aimlapi-credits-used": str(credits)})

    for route, path in PATHS.items():
        summary = (
            "Create a video generation task"
            if route == "unified"
            else (f"Create a generation (legacy {route} route)")
        )
        api.add_api_route(
            path, make_submit(route), methods=["POST"], status_code=201, summary=summary,
            name=f"submit_{route}", response_model=None,
        )  # fmt: skip
        api.add_api_route(
            path, poll, methods=["GET"], summary="Poll a generation", name=f"poll_{route}",
            response_model=None,
        )  # fmt: skip
    return api
