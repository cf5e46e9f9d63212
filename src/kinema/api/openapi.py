"""Publish every model spec's JSON Schema in `/openapi.json` (and so `/docs`): the submit
routes read their body by hand (to produce AI/ML API-style errors), so FastAPI cannot infer
it; we attach a `oneOf` over the spec classes, discriminated by `model`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kinema.api.generations import PATHS
from kinema.specs import ROUTES

REF = "#/components/schemas/{model}"
POLL_OPERATION: dict[str, Any] = {
    "tags": ["Video generations"],
    "summary": "Poll a generation",
    "parameters": [
        {"name": "generation_id", "in": "query", "required": True,
         "schema": {"type": "string", "maxLength": 200}}
    ],
    "responses": {"200": {"description": "id, status (queued|generating|completed|error), "
                          "video, error, meta.usage.credits_used, progress, queue_position"}},
}  # fmt: skip


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for route, classes in ROUTES.items():
            refs = []
            mapping = {}
            for cls in classes:
                model_schema = cls.model_json_schema(ref_template=REF)
                for name, definition in model_schema.pop("$defs", {}).items():
                    components[name] = definition
                name = cls.__name__
                components[name] = model_schema
                refs.append({"$ref": REF.format(model=name)})
                for model_id in cls.MODEL_IDS:
                    mapping[model_id] = REF.format(model=name)
            body = {"oneOf": refs, "discriminator": {"propertyName": "model", "mapping": mapping}}
            schema["paths"][PATHS[route]]["get"] = POLL_OPERATION
            post = schema["paths"][PATHS[route]]["post"]
            post["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
