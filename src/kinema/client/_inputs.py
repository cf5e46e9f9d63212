"""Building a request body on the client: local files become `data:` URIs (content sniffed,
size checked before reading), `key=value` text is coerced through the model's schema, and
the body is validated by the same model specs the server runs, so a bad enum or a missing
field fails here, before any network call. No I/O besides reading the input files."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kinema.client.errors import LocalValidationError
from kinema.media.sniff import AUDIO_FORMATS, IMAGE_FORMATS, MIME, VIDEO_FORMATS, sniff

MAX_INPUT_BYTES = 20 * 1024 * 1024  # the server's per-input cap (KINEMA_MAX_INPUT_BYTES)
ROUTE = "unified"

# Request fields that carry media, and what they must contain.
MEDIA_FIELDS = {
    "image_url": "image",
    "first_frame_image": "image",
    "last_image_url": "image",
    "tail_image_url": "image",
    "audio_url": "audio",
    "video_url": "video",
}
FORMATS = {"image": IMAGE_FORMATS, "audio": AUDIO_FORMATS, "video": VIDEO_FORMATS}
IMAGE_FIELDS = ("image_url", "first_frame_image")  # the first one a model has is `image=`
SHORTHANDS = {"audio": "audio_url", "last_image": "last_image_url"}

MediaInput = str | os.PathLike[str] | bytes


def _problem(field: str, message: str, received: Any = None) -> LocalValidationError:
    detail: dict[str, Any] = {"field": field, "message": message}
    if received is not None:
        detail["received"] = received
    return LocalValidationError([detail])


def _spec(model: str) -> Any:
    """The model's spec class, or None for an unknown model (validation names it)."""
    from kinema.specs import spec_class

    try:
        return spec_class(ROUTE, model)
    except KeyError:
        return None


def image_field(model: str) -> str:
    spec = _spec(model)
    accepted = spec.accepted_fields() if spec is not None else []
    return next((f for f in IMAGE_FIELDS if f in accepted), "image_url")


def media_value(field: str, value: Any) -> Any:
    """URLs and data: URIs pass through; a Path, an existing file's path or raw bytes
    becomes a data: URI whose type is sniffed from the content."""
    kind = MEDIA_FIELDS[field]
    if isinstance(value, bytes):
        return _data_uri(field, kind, value, "<bytes>")
    if isinstance(value, str) and value[:8].lower().startswith(("http://", "https://", "data:")):
        return value
    if isinstance(value, os.PathLike | str):
        path = Path(value).expanduser()
        if not path.is_file():
            raise _problem(
                field, f"{str(value)!r} is neither an http(s) URL, a data: URI nor an existing "
                "file", str(value),
            )  # fmt: skip
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise _problem(
                field, f"file is {size} bytes; inputs are limited to {MAX_INPUT_BYTES} bytes",
                str(value),
            )  # fmt: skip
        return _data_uri(field, kind, path.read_bytes(), str(value))
    return value  # anything else: the spec check below reports it


def _data_uri(field: str, kind: str, data: bytes, name: str) -> str:
    if len(data) > MAX_INPUT_BYTES:
        raise _problem(field, f"inputs are limited to {MAX_INPUT_BYTES} bytes", name)
    fmt = sniff(data, kind)
    if fmt is None:
        raise _problem(field, f"not a supported {kind} ({', '.join(FORMATS[kind])})", name)
    return f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def build_body(
    model: str, shorthands: Mapping[str, MediaInput | None], fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body for `model`: `fields` as given, `image=` / `audio=` / `last_image=`
    moved to the model's field names, media turned into URLs, checked against the model's
    spec. A model Kinema has no spec for is sent unchecked: the hosted AI/ML API serves
    many more models, and its server (like Kinema's) names a wrong model id itself."""
    body: dict[str, Any] = {"model": model, **fields}
    for short, value in shorthands.items():
        if value is None:
            continue
        target = image_field(model) if short == "image" else SHORTHANDS[short]
        if body.get(target) is not None:
            raise _problem(target, f"given twice (as {short}= and as {target}=); pass one")
        body[target] = value
    for name in MEDIA_FIELDS:
        if body.get(name) is not None:
            body[name] = media_value(name, body[name])
    if _spec(model) is not None:
        validate(body)
    return body


def validate(body: dict[str, Any]) -> None:
    """Run the server's own spec check; its 400 details become a LocalValidationError."""
    from kinema.errors import ValidationFailed
    from kinema.specs import parse_request

    try:
        parse_request(ROUTE, body)
    except ValidationFailed as exc:
        raise LocalValidationError([p.as_dict() for p in exc.problems], exc.message) from None


# --------------------------------------------------------------------------- key=value
_BOOLS = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}  # fmt: skip
_INT = re.compile(r"[+-]?\d+")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a (pydantic-generated) property schema admits."""
    out: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        out.add(declared)
    elif isinstance(declared, list):
        out.update(str(t) for t in declared)
    values = list(schema.get("enum") or []) + ([schema["const"]] if "const" in schema else [])
    out.update(_JSON_TYPES.get(type(v), "null") for v in values)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            if isinstance(sub, Mapping):
                out |= _types(sub)
    return out


def coerce_value(schema: Mapping[str, Any], text: str) -> Any:
    """Text from the command line as the type the field takes (`8` -> 8 for an integer
    enum, `false` -> False for a boolean); text stays text where a string is accepted."""
    types = _types(schema)
    word = text.strip().lower()
    if "null" in types and word in ("null", "none"):
        return None
    if "boolean" in types and word in _BOOLS:
        return _BOOLS[word]
    if "integer" in types and _INT.fullmatch(text.strip()):
        return int(text)
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    return text


def coerce_fields(model: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """`--set key=value` pairs typed through the model's JSON Schema. Unknown models and
    fields are kept as text: validation then names them with the accepted alternatives."""
    spec = _spec(model)
    properties: Mapping[str, Any] = (
        spec.model_json_schema().get("properties", {}) if spec is not None else {}
    )
    return {
        key: coerce_value(properties[key], value) if key in properties else value
        for key, value in raw.items()
    }
