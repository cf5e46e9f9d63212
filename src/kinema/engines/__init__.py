"""Engines: the interface (`base`), discovery and configuration (`registry`), and one
module per built-in engine, each registered in the `kinema.engines` entry-point group."""

from __future__ import annotations

from kinema.engines.base import Context, Engine, EngineOptions, InputLimits
from kinema.engines.registry import EngineSet, discover, engine_class

__all__ = [
    "Context", "Engine", "EngineOptions", "EngineSet", "InputLimits", "discover", "engine_class",
]  # fmt: skip
