"""The OpenAI Videos dialect's wire shapes: the `video` object exactly as OpenAI's
reference (and the `openai` package's `Video` type) defines it, the list page, the delete
answer and OpenAI's error envelope `{"error": {"message", "type", "param", "code"}}`;
and Kinema's errors mapped onto OpenAI's status codes."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from kinema.dialects.openai_jobs import Static
from kinema.dialects.openai_params import in_openai_terms, seconds_text
from kinema.errors import (
    CapabilityMissing,
    Conflict,
    KinemaError,
    NotFound,
    OutOfCredits,
    PayloadTooLarge,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from kinema.jobs.model import Status
from kinema.store import Job, JobStatus

STATUS = {
    Status.QUEUED: "queued", Status.GENERATING: "in_progress",
    Status.COMPLETED: "completed", Status.ERROR: "failed",
}  # fmt: skip
# `openai-poll-after-ms` while pending: the `openai` SDK's create_and_poll/poll wait this
# long between retrieves.
POLL_AFTER_MS = {Status.QUEUED: 1000, Status.GENERATING: 500}
INTERNAL_MESSAGE = "The server had an error while processing your request."
STORE_UNAVAILABLE = "Service unavailable: the job store is unreachable; retry shortly."
NO_RETRY = {"x-should-retry": "false"}  # the SDK retries 409/429 otherwise


class OpenAIVideoError(BaseModel):
    code: str = Field(description="Machine-readable: the Kinema error name in snake_case.")
    message: str


class OpenAIVideo(BaseModel):
    """OpenAI's `video` object. `status` is exactly queued|in_progress|completed|failed;
    `seconds` of an extension is the stitched total."""

    id: str
    object: Literal["video"] = "video"
    model: str = Field(description="The model (or alias) the video was asked for with.")
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(description="0-100.")
    created_at: int
    completed_at: int | None = Field(description="When it completed or failed.")
    expires_at: int | None = Field(description="When retention deletes it (if it does).")
    prompt: str | None
    seconds: str
    size: str = Field(description='"WIDTHxHEIGHT": the video\'s own once completed.')
    remixed_from_video_id: str | None
    error: OpenAIVideoError | None


class OpenAIVideoList(BaseModel):
    """A page of the key's videos (newest first unless `order=asc`)."""

    object: Literal["list"] = "list"
    data: list[OpenAIVideo]
    first_id: str | None
    last_id: str | None = Field(description="Pass as `after` for the next page.")
    has_more: bool


class OpenAIVideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorEnvelope(BaseModel):
    error: OpenAIErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Invalid request (`param` names the parameter), or one this deployment refuses on "
    "purpose (no enabled engine serves it; edits and characters).",
    401: "Missing, invalid or revoked API key.",
    404: "No such video (or another key's; for a list, the `after` video), or its content "
    "is not there (yet).",
    409: "An Idempotency-Key reused with a different request, or a video in the wrong "
    "state for the call (extending one that has not completed).",
    413: "Request body or upload over the server's limit.",
    429: "Too many pending videos for this key (retry later), or the key's credits cannot "
    "cover the video (`code: insufficient_quota`, not retried).",
    503: "The job store is unreachable; retry later.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": OpenAIErrorEnvelope, "description": ERROR_DESCRIPTIONS[code]}
        for code in codes
    }


def envelope(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def snake(name: str) -> str:
    """`InvalidInput` -> `invalid_input` (OpenAI's error codes are snake_case)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower() or "error"


def render(error: KinemaError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A Kinema error as OpenAI's status code, envelope and headers."""
    message = error.message.replace("Generation '", "Video '", 1)
    if isinstance(error, ValidationFailed):
        error = in_openai_terms(error)  # the poll's `generation_id` is `video_id` here
        first = error.problems[0] if error.problems else None
        if first is not None and error.message == "Body validation error!":
            text = "; ".join(f"{p.field}: {p.message}" for p in error.problems)
            message = f"Invalid request: {text}"
        code = "invalid_value"
        if first is not None and first.message.startswith("Missing required"):
            code = "missing_required_parameter"
        elif first is not None and first.message.startswith("Unknown parameter"):
            code = "unknown_parameter"
        param = first.field if first is not None and first.field != "body" else None
        return 400, envelope(message, "invalid_request_error", param, code), {}
    if isinstance(error, CapabilityMissing):
        return 400, envelope(message, "invalid_request_error", "model", "unsupported_model"), {}
    if isinstance(error, Unauthorized):
        return 401, envelope(message, "invalid_request_error", None, "invalid_api_key"), {}
    if isinstance(error, OutOfCredits):
        return 429, envelope(message, "insufficient_quota", None, "insufficient_quota"), NO_RETRY
    if isinstance(error, NotFound):
        return 404, envelope(message, "invalid_request_error", None, "not_found"), {}
    if isinstance(error, Conflict):
        return 409, envelope(message, "invalid_request_error", None, "conflict"), NO_RETRY
    if isinstance(error, PayloadTooLarge):
        return 413, envelope(message, "invalid_request_error", None, "request_too_large"), {}
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": "5"}
        return 429, envelope(message, "requests", None, "rate_limit_exceeded"), headers
    if isinstance(error, ServiceUnavailable | StoreUnavailable):
        message = STORE_UNAVAILABLE if isinstance(error, StoreUnavailable) else message
        headers = {"Retry-After": "5"}
        return 503, envelope(message, "server_error", None, "service_unavailable"), headers
    return 500, envelope(INTERNAL_MESSAGE, "server_error"), {}


def status_envelope(status: int, message: str) -> dict[str, Any]:
    """A plain HTTP error (405, a bare 500...) in OpenAI's envelope."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return envelope(message if status < 500 else INTERNAL_MESSAGE, kind)


def video_body(
    job: Job | JobStatus, static: Static, retention_days: float | None
) -> dict[str, Any]:
    """The `video` object of a job, as its status is now."""
    output = job.output if isinstance(job.output, dict) else None
    done = job.status == Status.COMPLETED and output is not None
    size = f"{output['width']}x{output['height']}" if done and output else static.size
    error = None
    if job.status == Status.ERROR:
        name = job.error_name or "Error"
        error = {"code": snake(name), "message": job.error_message or name}
    seconds = static.seconds
    if seconds == "0" and done and output and isinstance(output.get("duration"), int | float):
        seconds = seconds_text(float(output["duration"]))  # a length that followed its audio
    finished = int(job.finished_at) if job.finished_at is not None else None
    expires = None
    if finished is not None and retention_days is not None:
        expires = int(finished + retention_days * 86400)
    return {
        "id": job.id, "object": "video", "model": static.model, "status": STATUS[job.status],
        "progress": 100 if done else max(0, min(99, int(job.progress))),
        "created_at": int(job.created_at), "completed_at": finished, "expires_at": expires,
        "prompt": static.prompt, "seconds": seconds, "size": size,
        "remixed_from_video_id": static.remixed_from, "error": error,
    }  # fmt: skip


def poll_headers(job: Job | JobStatus) -> dict[str, str]:
    after = POLL_AFTER_MS.get(job.status)
    return {"openai-poll-after-ms": str(after)} if after is not None else {}
