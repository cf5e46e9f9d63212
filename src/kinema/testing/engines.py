"""Fixture engines: real engines with trivial rendering, for tests of everything around
an engine (API, worker, store, clients) without paying for a real one.

- `InstantEngine` serves any capability it is given, with a short grey clip of the
  request's duration (or 1 s) at a small size: a real MP4, in milliseconds.
- `FailingEngine` fails every job with the error it was built with.
- `SlowEngine` takes `steps` progress steps of `step_seconds` each, checking for
  cancellation between steps (the way a diffusion engine stops between denoising steps).
"""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import Field

from kinema.engines.base import Context, Engine, EngineOptions
from kinema.errors import EngineError
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    LIP_SYNC_TTS,
    TALKING_HEAD,
    TEXT_TO_VIDEO,
    RenderRequest,
)

ALL_CAPABILITIES = frozenset(
    {IMAGE_TO_VIDEO, TEXT_TO_VIDEO, TALKING_HEAD, LIP_SYNC_TTS, FIRST_LAST_FRAME, DIALOGUE}
)


class FixtureOptions(EngineOptions):
    capabilities: list[str] = Field(default_factory=lambda: sorted(ALL_CAPABILITIES))
    width: int = 64
    height: int = 48
    fps: int = 8


def _grey_clip(request: RenderRequest, ctx: Context, options: FixtureOptions) -> None:
    import numpy as np

    from kinema.media.encode import write_mp4

    seconds = request.duration or 1.0
    count = max(1, round(seconds * options.fps))
    frame = np.full((options.height, options.width, 3), 128, np.uint8)

    def on_frame(written: int) -> None:
        ctx.check_cancelled()
        ctx.progress(written / count)

    write_mp4(
        ctx.output_path, (frame for _ in range(count)), fps=options.fps,
        width=options.width, height=options.height, audio=None, on_frame=on_frame,
    )  # fmt: skip


class InstantEngine(Engine):
    name: ClassVar[str] = "instant"
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    Options = FixtureOptions
    requires = ("av", "numpy")
    options: FixtureOptions

    def offered(self) -> frozenset[str]:
        return frozenset(self.options.capabilities)

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        _grey_clip(request, ctx, self.options)


class FailingOptions(FixtureOptions):
    error_name: str = "GenerationError"
    message: str = "The fixture engine fails every job."


class FailingEngine(Engine):
    name: ClassVar[str] = "failing"
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    Options = FailingOptions
    options: FailingOptions

    def offered(self) -> frozenset[str]:
        return frozenset(self.options.capabilities)

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        raise EngineError(self.options.message, self.options.error_name)


class SlowOptions(FixtureOptions):
    steps: int = 20
    step_seconds: float = 0.05


class SlowEngine(Engine):
    name: ClassVar[str] = "slow"
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    Options = SlowOptions
    requires = ("av", "numpy")
    options: SlowOptions

    def offered(self) -> frozenset[str]:
        return frozenset(self.options.capabilities)

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        for step in range(self.options.steps):
            ctx.check_cancelled()
            time.sleep(self.options.step_seconds)
            ctx.progress((step + 1) / (self.options.steps + 1))
        _grey_clip(request, ctx, self.options)
