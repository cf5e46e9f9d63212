"""Engine registry: engine name -> class, imported lazily.

Engines declare their capabilities as class attributes and keep heavy imports inside
`load()`/`generate()`, so looking a capability up here stays cheap in the API process.
"""

from __future__ import annotations

import importlib

from kinema.engines.base import Context, Engine

__all__ = ["ENGINES", "Context", "Engine", "capabilities", "engine_class", "engine_for"]

# name -> "module:Class". Later engines (talking head, TTS, morph, upstream providers,
# diffusers) register here and nowhere else.
ENGINES: dict[str, str] = {
    "motion": "kinema.engines.motion:MotionEngine",  # image -> camera move (+ styles)
    "talking_head": "kinema.engines.talking_head:TalkingHeadEngine",  # image + audio
    "speaking": "kinema.engines.speaking:SpeakingEngine",  # image + text -> speech, lip-sync
    "morph": "kinema.engines.morph:MorphEngine",  # first + last frame
}


def engine_class(name: str) -> type[Engine]:
    try:
        target = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise ValueError(f"unknown engine '{name}' (known engines: {known})") from None
    module_name, class_name = target.split(":")
    cls: type[Engine] = getattr(importlib.import_module(module_name), class_name)
    return cls


def capabilities(enabled: list[str]) -> dict[str, str]:
    """capability -> the first enabled engine offering it (earlier engines win)."""
    table: dict[str, str] = {}
    for name in enabled:
        for capability in sorted(engine_class(name).capabilities):
            table.setdefault(capability, name)
    return table


def engine_for(enabled: list[str], capability: str) -> str | None:
    return capabilities(enabled).get(capability)
