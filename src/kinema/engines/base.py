"""The engine interface.

An engine is a plain class: `load()` once per worker process (heavy imports go there, so
the API process never imports numpy/av/torch), then `generate(request, ctx)` per job. It
writes an MP4 to `ctx.output_path`, reports progress with `ctx.progress(fraction)`, pulls
its media inputs with `ctx.fetch(ref)`, and calls `ctx.check_cancelled()` between frames.
It signals a failure by raising a `kinema.errors.JobFailure` (InputError, EngineError...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from kinema.specs.base import MediaRef, RenderRequest


class Context(ABC):
    """What an engine sees of the job it runs."""

    output_path: Path
    work_dir: Path

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

    def load(self) -> None:  # noqa: B027 - engines without weights need no loading
        """Import heavy modules and load weights; called once per worker process."""

    @abstractmethod
    def generate(self, request: RenderRequest, ctx: Context) -> None:
        """Write the video for `request` to `ctx.output_path` (an .mp4)."""
