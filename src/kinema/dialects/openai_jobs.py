"""Stored generations in OpenAI's terms, and the new ones made from them: `describe`
gives what never changes about a job (`Static`: model name, prompt, size, seconds, the
video it remixes); `remix_body` and `extension_body` make a remix's or an extension's
request from the job it starts from (an extension is stitched onto its source by the
worker, from the `extends` the job's extras record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kinema.dialects.openai_params import (
    DEFAULT_ASPECTS,
    NOT_CONTINUED,
    model_info,
    problem,
    seconds_text,
    size_of,
)
from kinema.specs import RenderRequest, spec_class


@dataclass(frozen=True)
class Static:
    """What never changes about a generation, in OpenAI's terms."""

    model: str  # the name the client asked for (an alias), else the Kinema model id
    prompt: str | None
    size: str  # asked for, or what the model makes by default (the video's, once made)
    seconds: str  # asked for (of an extension: the stitched total), else the model's
    remixed_from: str | None


def extras_of(raw: Any) -> dict[str, Any]:
    """A job's `extras` (a JSON string where the store's fast reads return one)."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def rendered(route: str, model: str, params: dict[str, Any]) -> RenderRequest | None:
    try:
        return spec_class(route, model).model_validate(params).render()
    except Exception:  # a model no longer served, or a row from an older spec
        return None


def expected_size(request: RenderRequest | None, image: tuple[int, int] | None = None) -> str:
    """The size the model will make: the aspect asked for, else the image's own snapped
    to the model's choices (when it is known), else the first choice."""
    from kinema.media.images import output_size

    if request is None:
        return ""
    if request.aspect is None and image is not None:
        w, h = output_size(request.short_side, None, request.aspect_choices, *image)
        return f"{w}x{h}"
    aspect = request.aspect or (request.aspect_choices or DEFAULT_ASPECTS)[0]
    return size_of(request.short_side, aspect)


def describe(
    route: str, model: str, params: dict[str, Any], raw_extras: Any, output: Any
) -> Static:
    extras = extras_of(raw_extras)
    prompt = params.get("prompt") if isinstance(params.get("prompt"), str) else None
    seconds, size = extras.get("seconds"), extras.get("size")
    if not isinstance(seconds, str) or not isinstance(size, str):
        request = rendered(route, model, params)
        if not isinstance(size, str):
            size = expected_size(request)
        if not isinstance(seconds, str):
            if request is not None and request.duration is not None:
                seconds = seconds_text(request.duration)
            elif isinstance(output, dict) and isinstance(output.get("duration"), int | float):
                seconds = seconds_text(float(output["duration"]))
            else:
                seconds = "0"
    name = extras.get("model")
    remixed = extras.get("remixed_from")
    return Static(
        model=name if isinstance(name, str) else model,
        prompt=prompt if prompt is not None else extras.get("prompt"),
        size=size,
        seconds=seconds,
        remixed_from=remixed if isinstance(remixed, str) else None,
    )


def remix_body(
    route: str, model: str, params: dict[str, Any], raw_extras: Any, source_id: str, prompt: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A remix: the source's request with the new prompt (its inputs, size and length
    kept; a remixed extension is stitched onto the same video), and the job's extras."""
    cls = spec_class(route, model)
    if "prompt" not in cls.model_fields:
        raise problem("prompt", f"Model '{model}' takes no prompt: there is nothing to remix.")
    extras = {
        key: value
        for key, value in extras_of(raw_extras).items()
        if key in ("model", "size", "seconds", "extends")
    }
    return {**params, "prompt": prompt}, {**extras, "remixed_from": source_id}


def extension_body(
    route: str,
    model: str,
    params: dict[str, Any],
    source: Static,
    source_id: str,
    source_key: str,
    size: str,
    seconds: Any,
    prompt: str,
    last_frame: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An extension: the source's model continued from its last frame (`last_frame`, a
    data: URI) for `seconds` more, with the new prompt; the worker delivers it stitched
    onto the source (`extends`), so its `seconds` is the total."""
    cls = spec_class(route, model)
    info = model_info(cls)
    if info.image_field is None or "prompt" not in info.fields:
        raise problem(
            "video", f"Model '{model}' cannot continue a video (it takes no first frame)."
        )
    fields, added = info.seconds_fields(seconds)
    body = {key: value for key, value in params.items() if key not in NOT_CONTINUED}
    body.update(fields)
    body.update({"prompt": prompt, info.image_field: last_frame})
    try:
        before = float(source.seconds)
    except ValueError:
        before = 0.0
    extras = {
        "model": source.model, "size": size, "seconds": seconds_text(before + added),
        "extends": {"id": source_id, "key": source_key},
    }  # fmt: skip
    return body, extras
