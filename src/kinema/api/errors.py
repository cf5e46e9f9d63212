"""Errors to HTTP: every refusal and failure reaches the client through the wire dialect
that owns the request's path (`Dialect.render_error`, the one mapping per dialect); this
module only installs the handlers and picks the dialect."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from kinema.dialects import Dialect, Rendered
from kinema.errors import FieldProblem, KinemaError, NotFound, ValidationFailed

log = logging.getLogger("kinema.api")
INTERNAL_MESSAGE = "Internal server error"


class ErrorRenderer:
    """Picks the dialect for a path (the first that owns it; the last is the default)."""

    def __init__(self, dialects: list[Dialect]) -> None:
        self.dialects = dialects

    def dialect_for(self, path: str) -> Dialect:
        for dialect in self.dialects:
            if dialect.owns(path):
                return dialect
        return self.dialects[-1]

    def __call__(self, error: KinemaError, path: str, request_id: str) -> Rendered:
        return self.dialect_for(path).render_error(error, path, request_id)

    def unexpected(self, exc: BaseException, method: str, path: str, request_id: str) -> Rendered:
        """An exception nobody raised on purpose: logged with its traceback for the
        operator; the client gets the dialect's bare 500, never internals."""
        if isinstance(exc, KinemaError):
            return self(exc, path, request_id)
        log.error("unhandled error on %s %s", method, path, exc_info=exc)
        return self.dialect_for(path).render_status(500, INTERNAL_MESSAGE, path, request_id)


def _field_of(loc: Sequence[Any]) -> str:
    """The request field a validation error is about: the parameter or top-level body
    field (`("body", "events", 0)` -> `events`), not the index inside it."""
    if len(loc) >= 2 and loc[0] in ("body", "query", "header", "path", "cookie"):
        return str(loc[1])
    return str(loc[-1]) if loc else "request"


def request_id(request: Request) -> str:
    return str(getattr(request.state, "inference_id", "") or "")


def _respond(rendered: Rendered) -> JSONResponse:
    status, body, headers = rendered
    return JSONResponse(body, status_code=status, headers=headers)


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def allowed_methods(request: Request, dialect: Dialect, path: str) -> str:
    """`Allow` of a 405: exactly the methods `/openapi.json` documents for this path (that
    document lists every route, the polls answered ahead of FastAPI included), so the two
    can never disagree."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = []
        for template, operations in request.app.openapi().get("paths", {}).items():
            pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
            methods = sorted(m.upper() for m in operations if m in HTTP_METHODS)
            table.append((pattern, methods))
        # Literal paths before templated ones: /v1/videos/extensions is not /v1/videos/{id}.
        table.sort(key=lambda entry: entry[0].pattern.count("[^/]+"))
        request.app.state.allowed_methods = table
    for pattern, methods in table:
        if pattern.fullmatch(path):
            return ", ".join(methods)
    return "GET" if dialect.poll_id(path, b"") is not None else ""


def install(app: FastAPI, render: ErrorRenderer) -> None:
    @app.exception_handler(KinemaError)
    async def _kinema_error(request: Request, exc: KinemaError) -> JSONResponse:
        return _respond(
            render.unexpected(exc, request.method, request.url.path, request_id(request))
        )

    @app.exception_handler(RequestValidationError)
    async def _query_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(
                _field_of(err.get("loc") or ()),
                "Required" if err.get("type") == "missing" else str(err.get("msg")),
            )
            for err in exc.errors()
        ]
        return _respond(render(ValidationFailed(problems), request.url.path, request_id(request)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path, rid = request.url.path, request_id(request)
        if exc.status_code == 404:
            return _respond(render(NotFound(f"Cannot {request.method} {path}"), path, rid))
        message = exc.detail if isinstance(exc.detail, str) else "Error"
        dialect = render.dialect_for(path)
        status, body, _ = dialect.render_status(exc.status_code, message, path, rid)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request, dialect, path)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up mid-body: nobody reads this answer, and it is not our error.
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _respond(
            render.unexpected(exc, request.method, request.url.path, request_id(request))
        )
