"""The one place where errors become HTTP responses: the AI/ML API error envelope
`{"message", "path", "requestId", "statusCode", "timestamp"}` (+ `details` for 400s)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

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


def render(error: ApiError, path: str, rid: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for an ApiError (used by the handlers below and by the
    poll fast path, which answers outside FastAPI)."""
    status = status_of(error)
    details = None
    if isinstance(error, ValidationFailed):
        details = [p.as_dict() for p in error.problems]
    headers = {"Retry-After": "5"} if status in (429, 503) else {}
    return status, envelope(status, error.message, path, rid, details), headers


def render_unexpected(
    exc: Exception, method: str, path: str, rid: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """An exception nobody raised on purpose: logged with its traceback for the operator;
    the client gets a 503 for a store outage, else a bare 500, never internals."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    if _is_database_outage(exc):
        outage = ServiceUnavailable("Service unavailable: the job store is unreachable.")
        return render(outage, path, rid)
    return 500, envelope(500, INTERNAL_MESSAGE, path, rid), {}


def error_response(request: Request, error: ApiError) -> JSONResponse:
    status, body, headers = render(error, request.url.path, request_id(request))
    return JSONResponse(body, status_code=status, headers=headers)


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

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up mid-body: nobody reads this answer, and it is not our error.
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = render_unexpected(
            exc, request.method, request.url.path, request_id(request)
        )
        return JSONResponse(body, status_code=status, headers=headers)


def _is_database_outage(exc: Exception) -> bool:
    from sqlalchemy.exc import DBAPIError, OperationalError

    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
