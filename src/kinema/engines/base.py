"""The engine interface.

An engine is a plain class: built with its typed options (cheap: no heavy imports), then
`load()` once per worker process (heavy imports and weights go there, so the API process
never imports numpy/av/torch), then `generate(request, ctx)` per job. It writes an MP4 to
`ctx.output_path`, reports progress with `ctx.progress(fraction)`, pulls its media inputs
with `ctx.fetch(ref)`, reads input limits from `ctx.limits`, and calls
`ctx.check_cancelled()` between frames. It signals a failure by raising a
`kinema.errors.JobFailure` (InputError, EngineError...).

Engines are found through the `kinema.engines` entry-point group (`kinema.engines.registry`),
so a separately installed package adds one with no change to Kinema.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from kinema.render_request import MediaRef, RenderRequest


class EngineOptions(BaseModel):
    """Base of an engine's options (`KINEMA_ENGINE_OPTIONS` / `[engine_options.NAME]`).
    Unknown options are an error, so a typo is caught at start-up, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class InputLimits:
    """The caps every engine applies to decoded inputs (from Settings)."""

    max_input_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000


class Context(ABC):
    """What an engine sees of the job it runs."""

    output_path: Path
    work_dir: Path
    limits: InputLimits = InputLimits()

    @abstractmethod
    def progress(self, fraction: float) -> None:
        """Report progress in [0, 1]; cheap enough to call once per frame."""

    @property
    @abstractmethod
    def cancelled(self) -> bool:
        """True once the job must stop (lease lost, worker shutting down)."""

    def check_cancelled(self) -> None:
        from kinema.errors import Cancelled

        if self.cancelled:
            raise Cancelled("The worker stopped this job before it finished.")

    @abstractmethod
    def fetch(self, ref: MediaRef) -> bytes:
        """The bytes of one media input (URL or data: URI), size-capped and SSRF-safe.
        Raises InputError naming `ref.field` when it cannot be had."""


class Engine(ABC):
    """One way of producing videos, serving one or more capabilities."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    # The engine's options model; engines without options keep the empty one.
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    # Importable modules `load()` needs, checked without importing them (the API process
    # uses this to refuse requests no worker could serve), and what to install for them.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = "pip install 'kinema[engines]' (or `kinema setup --engines`)"

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def unavailable(self) -> str | None:
        """Why this engine cannot run here (missing module, file, weights), or None.
        Cheap and import-free: the API process calls it at start-up."""
        missing = [name for name in self.requires if importlib.util.find_spec(name) is None]
        if missing:
            return f"missing Python packages {', '.join(missing)}: {self.install_hint}"
        return None

    def offered(self) -> frozenset[str]:
        """The capabilities this instance serves (an engine whose weights decide what it
        can do narrows `capabilities` here)."""
        return self.capabilities

    def load(self) -> None:  # noqa: B027 - engines without weights need no loading
        """Import heavy modules and load weights; called once per worker process."""

    @abstractmethod
    def generate(self, request: RenderRequest, ctx: Context) -> None:
        """Write the video for `request` to `ctx.output_path` (an .mp4)."""
