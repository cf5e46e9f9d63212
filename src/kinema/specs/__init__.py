"""Model specs: one pydantic class per model (and per legacy route spelling).

Everything derives from these classes: request validation, the published JSON Schema
(`/openapi.json`, `/v2/models`), pricing, and the engine-neutral `RenderRequest`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kinema.errors import FieldProblem, ValidationFailed
from kinema.render_request import RenderRequest
from kinema.specs.base import ModelSpec, Route
from kinema.specs.fabric import Fabric10, Fabric10Fast
from kinema.specs.minimax import Video01, Video01Legacy
from kinema.specs.pixverse import PixverseI2V, PixverseI2VLegacy
from kinema.specs.pixverse_lipsync import PixverseLipSync
from kinema.specs.veo import VeoFirstLastFast, VeoI2VFast, VeoLite, VeoLitePreview

__all__ = [
    "ROUTES", "ROUTE_INFO", "SPECS", "ModelSpec", "RenderRequest", "Route", "parse_request",
    "spec_class",
]  # fmt: skip

# Every model spec; the routes and everything else below derive from this list.
SPECS: tuple[type[ModelSpec], ...] = (
    Fabric10, Video01, VeoI2VFast, PixverseI2V, VeoLite, Video01Legacy, PixverseI2VLegacy,
    Fabric10Fast, VeoFirstLastFast, VeoLitePreview, PixverseLipSync,
)  # fmt: skip

# route name -> its Route (path, id field), and -> the spec classes it accepts
ROUTE_INFO: dict[str, Route] = {cls.ROUTE.name: cls.ROUTE for cls in SPECS}
ROUTES: dict[str, tuple[type[ModelSpec], ...]] = {
    name: tuple(cls for cls in SPECS if cls.ROUTE.name == name) for name in ROUTE_INFO
}


def _by_id(route: str) -> dict[str, type[ModelSpec]]:
    return {model_id: cls for cls in ROUTES[route] for model_id in cls.MODEL_IDS}


_INDEX = {route: _by_id(route) for route in ROUTES}


def spec_class(route: str, model: str) -> type[ModelSpec]:
    """The class for a stored job (route + model id); KeyError if unknown."""
    if route == "passthrough":  # any model an upstream passes through (specs/passthrough.py)
        from kinema.specs.passthrough import Passthrough

        return Passthrough
    return _INDEX[route][model]


def parse_request(route: str, body: Any) -> ModelSpec:
    """Validate a request body for `route`; raise ValidationFailed naming every problem."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            [FieldProblem("body", "expected a JSON object", "object", type(body).__name__)]
        )
    index = _INDEX[route]
    model = body.get("model")
    if not isinstance(model, str) or model not in index:
        expected = " | ".join(f"'{m}'" for m in index)
        shown = str(model)[:200]
        message = (
            "Required"
            if model is None
            else f"Invalid enum value. Expected {expected}, received '{shown}'"
        )
        received = shown if isinstance(model, str) else (model if _jsonable(model) else None)
        raise ValidationFailed([FieldProblem("model", message, expected, received)])
    cls = index[model]
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed(_problems(cls, exc)) from None


def _problems(cls: type[ModelSpec], exc: ValidationError) -> list[FieldProblem]:
    problems = []
    accepted = cls.accepted_fields()
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        received = err.get("input") if err["type"] != "missing" else None
        if isinstance(received, str) and len(received) > 200:
            received = received[:200] + "…"
        if not _jsonable(received):
            received = None
        if err["type"] == "extra_forbidden":
            message = (
                f"Unknown field '{loc}' for model '{cls.MODEL_IDS[0]}'. "
                f"Accepted fields: {', '.join(accepted)}"
            )
            problems.append(FieldProblem(loc, message, ", ".join(accepted), None))
            continue
        expected = None
        ctx = err.get("ctx") or {}
        if "expected" in ctx:
            expected = str(ctx["expected"])
            message = f"Invalid value. Expected {expected}, received {received!r}"
        elif err["type"] == "missing":
            message = "Required"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(FieldProblem(loc, message, expected, received))
    return problems


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
