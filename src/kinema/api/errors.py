"""The one place where errors become HTTP responses: the AI/ML API error envelope
`{"message", "path", "requestId", "statusCode", "timestamp"}` (+ `details` for 400s)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kinema.errors import (
    ApiError,
    CapabilityMissing,
    FieldProblem,
    NotFound,
    OutOfCredits,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger("kinema.api")

STATUS: dict[type[ApiError], int] = {
    ValidationFailed: 400,
    CapabilityMissing: 400,
    Unauthorized: 401,
    OutOfCredits: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
}
INTERNAL_MESSAGE = "Internal server error"


def status_of(error: ApiError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def envelope(
    status: int,
    message: str,
    path: str,
    request_id: str,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": message,
        "path": path,
        "requestId": request_id,
        "statusCode": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if details is not None:
        body["details"] = details
    return body


def request_id(request: Request) -> str:
    return str(getattr(request.state, "inference_id", "") or "")


def error_response(request: Request, error: ApiError) -> JSONResponse:
    status = status_of(error)
    details = None
    if isinstance(error, ValidationFailed):
        details = [p.as_dict() for p in error.problems]
    headers = {"Retry-After": "5"} if status in (429, 503) else None
    return JSONResponse(
        envelope(status, error.message, request.url.path, request_id(request), details),
        status_code=status,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _query_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(
                str(err["loc"][-1]) if err.get("loc") else "request",
                "Required" if err.get("type") == "missing" else str(err.get("msg")),
            )
            for err in exc.errors()
        ]
        return error_response(request, ValidationFailed(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Error"
        if exc.status_code == 404:
            message = f"Cannot {request.method} {request.url.path}"
        return JSONResponse(
            envelope(exc.status_code, message, request.url.path, request_id(request)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the traceback for the operator; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_database_outage(exc):
            return error_response(
                request, ServiceUnavailable("Service unavailable: the job store is unreachable.")
            )
        return JSONResponse(
            envelope(500, INTERNAL_MESSAGE, request.url.path, request_id(request)),
            status_code=500,
        )


def _is_database_outage(exc: Exception) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError) and bool(
        exc.connection_invalidated or "OperationalError" in type(exc).__name__
    )
