"""The AI/ML API dialect's response shapes (pydantic models), documented in
/openapi.json, and the error responses each route can give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kinema.jobs.model import Status


class Usage(BaseModel):
    credits_used: int = Field(description="Credits reserved at submit; charged when done.")


class Meta(BaseModel):
    usage: Usage
    backend: str | None = Field(
        default=None,
        description="What rendered (or renders) the video: a local engine (e.g. `motion`, "
        "`testcard`) or an upstream provider named by the operator.",
    )


class SubmitResponse(BaseModel):
    """201 answer of a submit: the generation's id, to poll with."""

    id: str
    status: Status
    meta: Meta


class MinimaxSubmitResponse(BaseModel):
    """201 answer of the legacy MiniMax route, which names the id `generation_id`."""

    generation_id: str
    status: Status
    meta: Meta


class Video(BaseModel):
    url: str = Field(description="Signed download URL; expires (poll again for a new one).")
    content_type: str
    file_name: str
    file_size: int
    duration: float
    width: int
    height: int


class GenerationError(BaseModel):
    name: str = Field(description="Error name, e.g. InvalidInput, FaceNotFound, WorkerLost.")
    message: str


class Generation(BaseModel):
    """200 answer of a poll. `progress` and `queue_position` appear while pending."""

    id: str
    status: Status
    model: str
    video: Video | None
    error: GenerationError | None
    meta: Meta
    progress: int | None = Field(default=None, description="0-99 while pending.")
    queue_position: int | None = Field(default=None, description="Queued jobs ahead.")


class ProblemDetail(BaseModel):
    field: str
    message: str
    expected: str | None = None
    received: str | int | float | bool | None = None


class ErrorEnvelope(BaseModel):
    message: str
    path: str
    requestId: str
    statusCode: int
    timestamp: str
    details: list[ProblemDetail] | None = Field(
        default=None, description="One entry per refused field (400 only)."
    )


ERROR_DESCRIPTIONS = {
    409: "Conflict: a cancel of a finished generation, or an Idempotency-Key reused with a "
    "different request.",
    400: "Invalid request (`details` names each field and what was expected), or a "
    "request this deployment refuses on purpose: no enabled engine serves what it needs "
    "(the message names the engine and what to install).",
    401: "Missing, invalid or revoked API key.",
    403: "The key's credits cannot cover this job.",
    404: "No such generation (or another key's).",
    413: "Request body over the server's limit.",
    429: "Too many pending generations for this key; retry later.",
    503: "The job store is unreachable; retry later.",
}


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS[code]} for code in codes
    }


class GenerationList(BaseModel):
    """A page of the key's generations, newest first."""

    data: list[Generation]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")


class Deleted(BaseModel):
    id: str
    deleted: bool


class QuoteResponse(BaseModel):
    """`?dry_run=true`: what the submit would cost and which backend would render it."""

    status: str = Field(description='Always "quote": nothing was created or charged.')
    model: str
    backend: str = Field(description="The engine (or upstream) that would render it.")
    capability: str
    meta: Meta
