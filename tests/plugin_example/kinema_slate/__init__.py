"""kinema-slate: an example Kinema engine that lives in its own package.

It serves `text-to-video` with a title card: the prompt, word-wrapped on a plain
background, revealed word by word over the first two thirds of the clip while a progress
bar fills along the bottom edge. The clip lasts the request's `duration` and has the
request's short side and aspect (the options' defaults when the request leaves them open).

Kinema finds it through the `kinema.engines` entry point in this package's pyproject.toml;
nothing in Kinema names it. Like Kinema's own engines, building it is cheap and imports
nothing heavy: numpy, Pillow and PyAV are imported in `load()` / `generate()`, which only
run in a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from kinema.engines import Context, Engine, EngineOptions
from kinema.errors import EngineError
from kinema.render_request import TEXT_TO_VIDEO, RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SlateEngine", "SlateOptions", "frame_size"]

FPS = 25
_COLOUR = r"^#[0-9a-fA-F]{6}$"
MIN_FONT = 12


class SlateOptions(EngineOptions):
    """`KINEMA_ENGINE_OPTIONS='{"slate": {...}}'` or `[engine_options.slate]`."""

    background: str = Field("#101820", pattern=_COLOUR, description="card colour, #rrggbb")
    foreground: str = Field("#f2aa4c", pattern=_COLOUR, description="text colour, #rrggbb")
    title: str | None = Field(None, max_length=80, description="a heading above the prompt")
    aspect: str = Field(
        "16:9", pattern=r"^[1-9]\d*:[1-9]\d*$", description="when the request has none"
    )
    seconds: float = Field(5.0, gt=0, le=60, description="when the request has no duration")


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def frame_size(short_side: int, aspect: str) -> tuple[int, int]:
    """(width, height) for a short side and a "W:H" aspect; both even (yuv420p)."""
    w, h = (int(part) for part in aspect.split(":"))
    ratio, short = w / h, _even(short_side)
    if ratio >= 1:
        return _even(short * ratio), short
    return short, _even(short / ratio)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class _Card:
    """The title card of one request: lays the prompt out once, then draws frames."""

    def __init__(self, prompt: str, width: int, height: int, options: SlateOptions) -> None:
        from PIL import ImageFont

        self.width, self.height, self.options = width, height, options
        self.margin = max(8, width // 16)
        self.bar = max(2, height // 60)
        self.words = prompt.split()
        title_size = max(MIN_FONT, height // 9)
        self.title_font: Any = ImageFont.load_default(size=title_size)
        self.title_height = round(title_size * 1.6) if options.title else 0
        # The largest font that fits the whole prompt between the title and the bar.
        room = height - 2 * self.margin - self.title_height - 2 * self.bar
        size = max(MIN_FONT, height // 14)
        while True:
            self.font: Any = ImageFont.load_default(size=size)
            self.line_height = round(size * 1.3)
            self.lines = self._wrap(self.words)
            if len(self.lines) * self.line_height <= room or size <= MIN_FONT:
                break
            size = max(MIN_FONT, round(size * 0.85))
        fitting = max(1, room // self.line_height)
        if len(self.lines) > fitting:  # still too long at the smallest size: cut it
            self.lines = self.lines[:fitting]
            self.lines[-1] = [*self.lines[-1][:-1], "…"] if len(self.lines[-1]) > 1 else ["…"]
            self.words = [word for line in self.lines for word in line]

    def _wrap(self, words: list[str]) -> list[list[str]]:
        limit = self.width - 2 * self.margin
        lines: list[list[str]] = []
        for word in words:
            if lines and self.font.getlength(" ".join([*lines[-1], word])) <= limit:
                lines[-1].append(word)
            else:
                lines.append([word])
        return lines

    def _still(self, shown: int) -> npt.NDArray[np.uint8]:
        """The card with the first `shown` words of the prompt."""
        import numpy as np
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (self.width, self.height), _rgb(self.options.background))
        draw = ImageDraw.Draw(image)
        colour = _rgb(self.options.foreground)
        y = self.margin
        if self.options.title:
            draw.text((self.margin, y), self.options.title, fill=colour, font=self.title_font)
            y += self.title_height
        left = shown
        for line in self.lines:
            if left <= 0:
                break
            draw.text((self.margin, y), " ".join(line[:left]), fill=colour, font=self.font)
            left -= len(line)
            y += self.line_height
        return np.asarray(image, dtype=np.uint8)

    def frames(self, count: int) -> Iterator[npt.NDArray[np.uint8]]:
        reveal = max(1, round(count * 2 / 3))  # every word is on screen by then
        colour = _rgb(self.options.foreground)
        still, shown = self._still(0), 0
        for index in range(count):
            wanted = min(len(self.words), -(-(index + 1) * len(self.words) // reveal))
            if wanted != shown:
                still, shown = self._still(wanted), wanted
            frame = still.copy()
            filled = round(self.width * (index + 1) / count)
            frame[self.height - self.bar :, :filled] = colour
            yield frame


class SlateEngine(Engine):
    name: ClassVar[str] = "slate"
    capabilities: ClassVar[frozenset[str]] = frozenset({TEXT_TO_VIDEO})
    Options: ClassVar[type[EngineOptions]] = SlateOptions
    requires: ClassVar[tuple[str, ...]] = ("av", "cv2", "numpy", "PIL")
    install_hint: ClassVar[str] = "pip install kinema-slate 'kinema[engines]'"
    options: SlateOptions

    def load(self) -> None:
        import av  # noqa: F401
        import numpy  # noqa: F401
        from PIL import ImageFont

        ImageFont.load_default(size=MIN_FONT)  # needs Pillow's FreeType support

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        import numpy as np

        from kinema.media.encode import write_mp4

        if request.capability != TEXT_TO_VIDEO:
            raise EngineError(f"slate renders text-to-video only, not {request.capability}")
        width, height = frame_size(request.short_side, request.aspect or self.options.aspect)
        seconds = request.duration if request.duration is not None else self.options.seconds
        count = max(1, round(seconds * FPS))
        card = _Card(request.prompt, width, height, self.options)

        def on_frame(written: int) -> None:
            ctx.check_cancelled()
            ctx.progress(written / count)

        # A card has no sound of its own; a request that asks for audio gets silence.
        silence = np.zeros(1, np.float32) if request.generate_audio else None
        write_mp4(
            ctx.output_path, card.frames(count), fps=FPS, width=width, height=height,
            audio=silence, on_frame=on_frame,
        )  # fmt: skip
