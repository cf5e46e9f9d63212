"""The OpenAI Videos dialect's part of `/openapi.json`: the request bodies its routes read
by hand (JSON or multipart), the retrieve served on the poll fast path, bearer security,
and what each model takes for `seconds` and `size` (from its spec)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.dialects.openai_models import (
    ERROR_DESCRIPTIONS,
    OpenAIErrorEnvelope,
    OpenAIVideo,
    OpenAIVideoDeleted,
    OpenAIVideoList,
)
from kinema.dialects.openai_params import DEFAULT_MODEL, MODELS, model_info

if TYPE_CHECKING:
    from kinema.dialects.openai import OpenAIDialect

REF = "#/components/schemas/{model}"
URL_PATTERN = "^(?:[Hh][Tt][Tt][Pp][Ss]?://|[Dd][Aa][Tt][Aa]:)"
BINARY = {"type": "string", "format": "binary"}

MAX_PROMPT = 10_000  # the longest prompt any /v1 request may carry (models may take less)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _reference(key: str) -> dict[str, Any]:
    url = {"type": "string", "pattern": URL_PATTERN, "maxLength": 30_000_000}
    shaped = {
        "type": "object", "required": [key], "additionalProperties": False,
        "properties": {key: url},
    }  # fmt: skip
    return {"oneOf": [url, shaped], "description": "An http(s) URL or a data: URI."}


def choices(dialect: OpenAIDialect) -> str:
    """What each model (and alias) takes, for the create's description."""
    lines = []
    for model_id, cls in sorted(MODELS.items()):
        info = model_info(cls)
        seconds = ", ".join(str(d) for d in info.durations) or (
            f"{info.fixed_duration:g}" if info.fixed_duration else "follows the audio"
        )
        sizes = ", ".join(text for text, _ in info.sizes())
        if not info.aspects:
            sizes += " (the aspect follows the input_reference)"
        lines.append(f"- `{model_id}`: seconds {seconds}; size {sizes}")
    for alias, target in sorted(dialect.aliases.items()):
        lines.append(f"- `{alias}`: an alias of `{target}`")
    return "\n".join(lines)


def create_body(dialect: OpenAIDialect, upload: bool) -> dict[str, Any]:
    served = sorted({*MODELS, *dialect.aliases})
    media = {
        name: BINARY if upload else _reference(key)
        for name, key in (
            ("input_reference", "image_url"), ("last_frame", "image_url"),
            ("audio_reference", "audio_url"),
        )
    }  # fmt: skip
    if not upload:
        media["image_reference"] = _reference("image_url")
    return {
        "type": "object", "required": ["prompt"], "additionalProperties": False,
        "properties": {
            "prompt": {"type": "string", "maxLength": MAX_PROMPT},
            "model": {"type": "string", "enum": served, "default": DEFAULT_MODEL},
            "seconds": {"type": "string", "pattern": "^[1-9][0-9]{0,3}$"},
            "size": {"type": "string", "pattern": "^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$"},
            **media,
            "negative_prompt": {"type": "string", "description": "Where the model has it."},
            "seed": {"type": "integer", "description": "Where the model has it."},
            "user": {"type": "string", "description": "Accepted and ignored."},
        },
    }  # fmt: skip


def document(schema: dict[str, Any], dialect: OpenAIDialect) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (OpenAIVideo, OpenAIErrorEnvelope, OpenAIVideoList, OpenAIVideoDeleted):
        definition = model.model_json_schema(ref_template=REF)
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    paths = schema["paths"]
    for path, operations in paths.items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    create = paths["/v1/videos"]["post"]
    create["description"] += "\n\nWhat each model takes:\n" + choices(dialect)
    create["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": create_body(dialect, upload=False)},
        "multipart/form-data": {"schema": create_body(dialect, upload=True)},
    }}  # fmt: skip
    prompt = {"type": "string", "maxLength": MAX_PROMPT}
    remix = {
        "type": "object", "required": ["prompt"], "additionalProperties": False,
        "properties": {"prompt": prompt},
    }  # fmt: skip
    paths["/v1/videos/{video_id}/remix"]["post"]["requestBody"] = {
        "required": True, "content": {"application/json": {"schema": remix}},
    }  # fmt: skip
    video = {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 200}},
    }  # fmt: skip
    extension = {
        "type": "object", "required": ["prompt", "seconds", "video"],
        "additionalProperties": False,
        "properties": {
            "prompt": prompt, "seconds": {"type": "string", "pattern": "^[1-9][0-9]{0,3}$"},
            "video": video,
        },
    }  # fmt: skip
    paths["/v1/videos/extensions"]["post"]["requestBody"] = {
        "required": True, "content": {"application/json": {"schema": extension}},
    }  # fmt: skip
    errors = {str(code): _json("OpenAIErrorEnvelope", ERROR_DESCRIPTIONS[code]) for code in (
        400, 401, 404, 503)}  # fmt: skip
    retrieve = {
        "tags": ["OpenAI Videos"], "summary": "Retrieve a video", "operationId": "retrieve_video",
        "security": [{"bearer": []}],
        "description": "Answered ahead of FastAPI (the poll fast path). While the video is "
        "queued or in progress the `openai-poll-after-ms` header says when to ask again.",
        "parameters": [{
            "name": "video_id", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }],
        "responses": {"200": _json("OpenAIVideo", "The video, as it is now."), **errors},
    }  # fmt: skip
    paths.setdefault("/v1/videos/{video_id}", {})["get"] = retrieve
