"""Per-model field mapping for the providers with their own schemas (fal, replicate,
gemini): each kind's `FIELD_MAP` names, per Kinema model id, the provider's app/model
and which of our request values goes in which provider field; the upstream's `models`
option overrides it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.providers.errors import UpstreamError
from kinema.render_request import RenderRequest

if TYPE_CHECKING:
    from kinema.providers.base import Provider


def request_value(request: RenderRequest, source: str) -> Any:
    """One of our request's values, in the shape a provider table names it:
    `prompt`, `negative_prompt`, `image`/`last_image`/`audio` (URL or data: URI),
    `duration` (int s), `duration_s` ("8s"), `duration_str` ("8"), `resolution` ("720p"),
    `aspect` ("16:9"), `aspect_auto` (the aspect, or "auto"), `generate_audio`, `seed`,
    `style`, `tts_text`, `person_generation`. None: leave the provider's field out."""
    duration = round(request.duration) if request.duration is not None else None
    values: dict[str, Any] = {
        "prompt": request.prompt or None,
        "negative_prompt": request.negative_prompt,
        "image": request.image.url if request.image else None,
        "last_image": request.last_image.url if request.last_image else None,
        "audio": request.audio.url if request.audio else None,
        "duration": duration,
        "duration_s": f"{duration}s" if duration is not None else None,
        "duration_str": str(duration) if duration is not None else None,
        "resolution": f"{request.short_side}p",
        "aspect": request.aspect,
        "aspect_auto": request.aspect or "auto",
        "generate_audio": request.generate_audio,
        "seed": request.seed,
        "style": request.style,
        "tts_text": request.tts_text,
        "person_generation": request.person_generation,
    }
    if source not in values:
        raise UpstreamError(f"Unknown request value '{source}' in a field mapping.", "ConfigError")
    return values[source]


def model_entry(
    provider: Provider, table: dict[str, dict[str, Any]], request: RenderRequest
) -> dict[str, Any]:
    """The built-in table's entry for the request's model, with the upstream's `models`
    override merged over it (`fields` and `input` merged key by key, the rest replaced)."""
    base = table.get(request.model, {})
    override = provider.overrides(request.model)
    if not base and not override:
        raise UpstreamError(
            f"The upstream provider '{provider.name}' has no field mapping for model "
            f"'{request.model}'; the operator can add one with the upstream's `models` option.",
            "UpstreamUnsupported",
        )
    entry = {**base, **override}
    for merged in ("fields", "input"):
        entry[merged] = {**base.get(merged, {}), **override.get(merged, {})}
    if "fields_last" in base or "fields_last" in override:
        entry["fields_last"] = {**base.get("fields_last", {}), **override.get("fields_last", {})}
    return entry


def mapped_input(entry: dict[str, Any], request: RenderRequest) -> dict[str, Any]:
    """`fields` (provider field -> our value name) and constant `input`, None left out; a
    first + last frame request uses `fields_last` where the entry names a separate app
    for it (`app_last`), whose schema differs (e.g. fal's `first_frame_url`)."""
    fields = entry["fields"]
    if request.last_image is not None and entry.get("fields_last"):
        fields = entry["fields_last"]
    body = {
        name: value
        for name, source in fields.items()
        if source and (value := request_value(request, source)) is not None
    }
    return {**body, **entry["input"]}


def app_for(entry: dict[str, Any], request: RenderRequest, key: str = "app") -> str:
    """The provider's model/app id: `{key}_last` when the request has a last frame and the
    entry names one, `{key}_image` when it has an image and the entry names one, else
    `{key}`."""
    if request.last_image is not None and entry.get(f"{key}_last"):
        return str(entry[f"{key}_last"])
    if request.image is not None and entry.get(f"{key}_image"):
        return str(entry[f"{key}_image"])
    return str(entry[key])
