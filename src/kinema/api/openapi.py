"""`/openapi.json`: FastAPI's document, completed by each dialect (request bodies it reads
by hand, its polls served ahead of FastAPI, its error envelope) and the bearer scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kinema.dialects import Dialect


def install(app: FastAPI, dialects: list[Dialect]) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A Kinema API key."}
        }
        for dialect in dialects:
            dialect.document(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
