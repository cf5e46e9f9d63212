"""OpenAI Videos parameters onto Kinema's model specs: a `POST /v1/videos` body (`model`,
`prompt`, `seconds`, `size`, `input_reference` and the extension fields other servers
take) becomes the request body of a Kinema model on the unified route (the way back, a
stored job in OpenAI's terms, is `openai_jobs`).

What a model accepts is read from its spec class (field names, `Literal` choices, what its
`render()` makes by default), so a new spec is served here without a table to update."""

from __future__ import annotations

import base64
import functools
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from kinema.errors import FieldProblem, ValidationFailed
from kinema.specs import SPECS, ModelSpec, RenderRequest

UNIFIED = "unified"
SIZE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
SECONDS = re.compile(r"^[1-9][0-9]{0,3}$")
DEFAULT_MODEL = "sora-2"  # what OpenAI's API assumes when a request names none
DEFAULT_ASPECTS = ("16:9", "9:16")
IMAGE_FIELDS = ("image_url", "first_frame_image")
# Cleared when a video is continued from its last frame (they belong to the first clip).
NOT_CONTINUED = ("last_image_url", "lip_sync_tts_content", "lip_sync_tts_speaker")
CREATE_FIELDS = frozenset(
    {"model", "prompt", "seconds", "size", "input_reference", "image_reference", "last_frame",
     "audio_reference", "negative_prompt", "seed", "user"}
)  # fmt: skip
# A spec field -> the OpenAI parameter a problem with it is reported under.
PARAM_OF = {
    "image_url": "input_reference", "first_frame_image": "input_reference",
    "last_image_url": "last_frame", "tail_image_url": "last_frame",
    "audio_url": "audio_reference", "duration": "seconds", "resolution": "size",
    "aspect_ratio": "size", "generation_id": "video_id",
}  # fmt: skip
MODELS: dict[str, type[ModelSpec]] = {
    model_id: cls for cls in SPECS if cls.ROUTE.name == UNIFIED for model_id in cls.MODEL_IDS
}


def problem(param: str, message: str, received: Any = None) -> ValidationFailed:
    """A 400 naming one OpenAI parameter."""
    return ValidationFailed([FieldProblem(param, message, None, received)], message)


def in_openai_terms(error: ValidationFailed) -> ValidationFailed:
    """The same refusal with spec field names replaced by the OpenAI parameters they came
    from (`duration` -> `seconds`, `image_url` -> `input_reference`...)."""
    problems = [
        FieldProblem(
            PARAM_OF.get(p.field.split(".")[0], p.field), p.message, p.expected, p.received
        )
        for p in error.problems
    ]
    return ValidationFailed(problems, error.message)


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The `Literal` values an annotation allows, in order (through Optional/Annotated)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return tuple(value for value in get_args(annotation) if value is not None)
    if origin in (Union, types.UnionType, Annotated):
        return tuple(value for arg in get_args(annotation) for value in _choices(arg))
    return ()


def seconds_text(seconds: float) -> str:
    """OpenAI's `seconds`: "8", or "4.5" for a length that is not whole."""
    return str(round(seconds)) if abs(seconds - round(seconds)) < 1e-3 else f"{seconds:.3g}"


def size_of(short_side: int, aspect: str) -> str:
    from kinema.media.images import output_size

    width, height = output_size(short_side, aspect, (), 16, 9)
    return f"{width}x{height}"


def _join(values: list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


@dataclass(frozen=True)
class ModelInfo:
    """What a model's spec lets the OpenAI parameters choose."""

    cls: type[ModelSpec]
    fields: frozenset[str]
    durations: tuple[int, ...]  # `seconds` choices; () when fixed or set by the audio
    fixed_duration: float | None  # the one length of a model without a duration choice
    resolutions: dict[int, str]  # short side -> the model's resolution value
    short_side: int  # the default (or only) short side
    aspects: tuple[str, ...]  # `aspect_ratio` choices; () when the image sets the aspect
    aspect_choices: tuple[str, ...]  # what an image's own aspect snaps to

    @property
    def image_field(self) -> str | None:
        return next((name for name in IMAGE_FIELDS if name in self.fields), None)

    def sizes(self) -> list[tuple[str, dict[str, Any]]]:
        """Every `size` the model makes, with the spec fields that ask for it."""
        shorts: dict[int, str | None] = {**self.resolutions} or {self.short_side: None}
        aspects = self.aspects or self.aspect_choices or DEFAULT_ASPECTS
        found = []
        for short, value in shorts.items():
            for aspect in aspects:
                fields: dict[str, Any] = {} if value is None else {"resolution": value}
                if self.aspects:
                    fields["aspect_ratio"] = aspect
                found.append((size_of(short, aspect), fields))
        return found

    def size_fields(self, size: str) -> dict[str, Any]:
        """The spec fields for an OpenAI `size`; a 400 naming the supported ones."""
        match = SIZE.match(size)
        for text, fields in self.sizes():
            if text == size:
                return fields
        if match and not self.aspects:  # the image sets the aspect: the short side binds
            short = min(int(match.group(1)), int(match.group(2)))
            if short in self.resolutions:
                return {"resolution": self.resolutions[short]}
            if not self.resolutions and short == self.short_side:
                return {}
        supported = _join([text for text, _ in self.sizes()])
        note = "" if self.aspects else " (the aspect follows the input_reference)"
        message = (
            f"Invalid value: '{size[:40]}'. Supported values for model "
            f"'{self.cls.MODEL_IDS[0]}' are: {supported}{note}."
        )
        raise problem("size", message, size[:40])

    def seconds_fields(self, raw: Any) -> tuple[dict[str, Any], int]:
        """The spec fields for an OpenAI `seconds`, and the seconds; a 400 naming the
        supported ones."""
        text = str(raw).strip() if isinstance(raw, str | int) else ""
        if not SECONDS.match(text):
            raise problem("seconds", "Invalid value: seconds must be a whole number of seconds.")
        seconds = int(text)
        if self.durations:
            if seconds in self.durations:
                return {"duration": seconds}, seconds
            supported = _join([str(d) for d in self.durations])
        elif self.fixed_duration is not None:
            if seconds == round(self.fixed_duration):
                return {}, seconds
            supported = f"'{seconds_text(self.fixed_duration)}'"
        else:
            raise problem(
                "seconds",
                f"Model '{self.cls.MODEL_IDS[0]}' takes no seconds: the length follows the "
                "audio_reference.",
            )
        message = (
            f"Invalid value: '{text}'. Supported values for model "
            f"'{self.cls.MODEL_IDS[0]}' are: {supported}."
        )
        raise problem("seconds", message, text)


def _sample(cls: type[ModelSpec]) -> RenderRequest | None:
    """What the model renders with its defaults (required inputs given empty data: URIs)."""
    values: dict[str, Any] = {"model": cls.MODEL_IDS[0]}
    for name, info in cls.model_fields.items():
        if name != "model" and info.is_required():
            values[name] = "data:,"
    try:
        return cls.model_construct(**values).render()
    except Exception:
        return None


@functools.cache
def model_info(cls: type[ModelSpec]) -> ModelInfo:
    fields = cls.model_fields
    sample = _sample(cls)
    resolutions = {}
    if "resolution" in fields:
        for value in _choices(fields["resolution"].annotation):
            digits = re.match(r"^([0-9]+)", str(value))
            if digits:
                resolutions[int(digits.group(1))] = value
    durations = tuple(
        int(value) for value in _choices(fields["duration"].annotation) if isinstance(value, int)
    ) if "duration" in fields else ()  # fmt: skip
    aspects = _choices(fields["aspect_ratio"].annotation) if "aspect_ratio" in fields else ()
    return ModelInfo(
        cls=cls,
        fields=frozenset(info.alias or name for name, info in fields.items()),
        durations=durations,
        fixed_duration=None if durations or sample is None else sample.duration,
        resolutions=resolutions,
        short_side=sample.short_side if sample is not None else 720,
        aspects=tuple(str(a) for a in aspects),
        aspect_choices=sample.aspect_choices if sample is not None else (),
    )


def resolve_model(name: Any, aliases: dict[str, str]) -> tuple[str, type[ModelSpec]]:
    """(the name the client used, the spec class it stands for); a 400 listing the
    models and aliases served when it is neither."""
    if name is None:
        name = DEFAULT_MODEL
    if isinstance(name, str):
        cls = MODELS.get(aliases.get(name, name))
        if cls is not None:
            return name, cls
    served = sorted({*aliases, *MODELS})
    message = f"Invalid value: '{str(name)[:100]}'. Supported models are: {_join(served)}."
    raise problem("model", message, str(name)[:100])


# -------------------------------------------------------------------------- requests
def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def media_reference(value: Any, param: str, kind: str) -> str:
    """A JSON reference (a URL or data: URI, or an object with `image_url`/`audio_url`)
    as the URL a spec takes; uploads are turned into data: URIs by the caller."""
    key = "audio_url" if kind == "audio" else "image_url"
    if isinstance(value, dict):
        if "file_id" in value and key not in value:
            raise problem(
                param,
                "file_id references are not supported by this server: upload the file "
                f"(multipart) or pass {{'{key}': <URL or data: URI>}}.",
            )
        unknown = sorted(set(value) - {key})
        if unknown:
            raise problem(param, f"Unknown parameter: '{param}.{unknown[0][:60]}'.")
        value = value.get(key)
    if not isinstance(value, str) or not value:
        raise problem(param, f"Invalid value: expected a file, a URL or {{'{key}': <URL>}}.")
    return value


def create_body(
    payload: dict[str, Any], aliases: dict[str, str], media: dict[str, str]
) -> tuple[str, type[ModelSpec], dict[str, Any]]:
    """(the model name asked for, its spec, the spec's request body) for a create;
    `media` holds each media parameter as the URL (or data: URI) the spec takes."""
    for name in payload:
        if name == "characters":
            raise problem(
                "characters",
                "Characters are not supported: no backend of this deployment offers them.",
            )
        if name not in CREATE_FIELDS:
            raise problem(name, f"Unknown parameter: '{str(name)[:60]}'.")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        message = "Missing required parameter: 'prompt'." if prompt is None else (
            "Invalid type for 'prompt': expected a string."
        )  # fmt: skip
        raise problem("prompt", message)
    name, cls = resolve_model(payload.get("model"), aliases)
    info = model_info(cls)
    body: dict[str, Any] = {"model": cls.MODEL_IDS[0]}
    if "prompt" in info.fields:
        body["prompt"] = prompt
    targets = {
        "input_reference": info.image_field,
        "last_frame": "last_image_url" if "last_image_url" in info.fields else None,
        "audio_reference": "audio_url" if "audio_url" in info.fields else None,
    }
    for param, url in media.items():
        target = targets["input_reference" if param == "image_reference" else param]
        if target is None:
            raise problem(param, f"Model '{cls.MODEL_IDS[0]}' does not take {param}.")
        body[target] = url
    for param in ("negative_prompt", "seed"):
        if payload.get(param) is not None:
            if param not in info.fields:
                raise problem(param, f"Model '{cls.MODEL_IDS[0]}' does not take {param}.")
            body[param] = payload[param]
    if payload.get("seconds") is not None:
        body.update(info.seconds_fields(payload["seconds"])[0])
    if payload.get("size") is not None:
        size = payload["size"]
        body.update(info.size_fields(size if isinstance(size, str) else str(size)))
    return name, cls, body
