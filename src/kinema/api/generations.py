"""Submitting generations (POST), on the unified path and on the two legacy vendor paths.
Polls (GET on the same paths) are served by `kinema.api.polling` in front of FastAPI."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.auth import Authenticator
from kinema.errors import FieldProblem, ValidationFailed
from kinema.submission import Submitter

# route name -> path. Legacy paths come from the vendor-named API the docs still show.
PATHS = {
    "unified": "/v2/video/generations",
    "minimax": "/v2/generate/video/minimax/generation",
    "pixverse": "/v2/generate/video/pixverse/generation",
}


def router(auth: Authenticator, submitter: Submitter) -> APIRouter:
    api = APIRouter(tags=["Video generations"])

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
    return api
