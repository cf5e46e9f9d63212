"""What the client half of the `kinema` command prints (`cli_client.py`): the live
progress of a wait on stderr, and the tables of `ls`, `quote` and `models`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from kinema.client._core import COMPLETED, ERROR, GENERATING, QUEUED
from kinema.client.models import GenerationBase, ModelInfo, Quote

BAR_WIDTH = 24


class Progress:
    """The wait shown on stderr: a bar rewritten in place (\\r) on a terminal, one line
    per status change otherwise (logs, CI). ETA comes from the progress rate since the
    job started generating, once progress is above zero."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.tty = stream.isatty()
        self.start = clock()
        self.generating_since: float | None = None
        self.last_status: str | None = None
        self.width = 0
        self.finished = False

    def __call__(self, generation: GenerationBase) -> None:
        now = self.clock()
        if generation.status == GENERATING and self.generating_since is None:
            self.generating_since = now
        line = self.render(generation, now)
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = max(self.width, len(line))
        elif generation.status != self.last_status:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_status = generation.status

    def render(self, generation: GenerationBase, now: float) -> str:
        elapsed = f"elapsed {_clock(now - self.start)}"
        status, progress = generation.status, generation.progress
        if status == QUEUED:
            where = generation.queue_position
            position = f" (position {where})" if where is not None and where > 0 else ""
            return f"{generation.id}: queued{position}  {elapsed}"
        if status in (COMPLETED, ERROR):
            return f"{generation.id}: {status}  {elapsed}"
        if progress is None:
            return f"{generation.id}: {status}  {elapsed}"
        filled = int(BAR_WIDTH * min(100.0, max(0.0, progress)) / 100)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"{generation.id}: {status} [{bar}] {progress:3.0f}%  {elapsed}"
        eta = self.eta(progress, now)
        return line + (f"  ETA {_clock(eta)}" if eta is not None else "")

    def eta(self, progress: float, now: float) -> float | None:
        if self.generating_since is None or progress <= 0 or progress >= 100:
            return None
        spent = now - self.generating_since
        return spent * (100 - progress) / progress if spent > 0 else None

    def finish(self) -> None:
        """End the rewritten line (once), so what follows starts on a line of its own."""
        if self.tty and self.last_status is not None and not self.finished:
            self.stream.write("\n")
            self.stream.flush()
        self.finished = True


def _clock(seconds: float) -> str:
    whole = int(max(0.0, seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def render_quote(quote: Quote) -> str:
    rows = [
        ("model", quote.model), ("backend", quote.backend),
        ("capability", quote.capability), ("credits", quote.credits_used),
    ]  # fmt: skip
    return "\n".join(f"{name:11} {value}" for name, value in rows if value is not None)


def _detail(generation: GenerationBase) -> str:
    if generation.error is not None:
        return f"{generation.error.name}: {generation.error.message}"
    if generation.video is not None:
        v = generation.video
        size = f"{v.width}x{v.height}" if v.width and v.height else ""
        length = f"{v.duration:g} s" if v.duration is not None else ""
        return "  ".join(part for part in (size, length) if part)
    if generation.status == GENERATING and generation.progress is not None:
        return f"{generation.progress:.0f}%"
    if generation.status == QUEUED and generation.queue_position:
        return f"position {generation.queue_position}"
    return ""


def render_table(generations: Sequence[GenerationBase]) -> str:
    """Columns as wide as their widest cell; CREDITS right-aligned."""
    header = ("ID", "STATUS", "MODEL", "CREDITS", "DETAIL")
    rows = [header] + [
        (g.id, g.raw_status or g.status, g.model or "",
         "" if g.credits_used is None else str(g.credits_used), _detail(g))
        for g in generations
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in
                 enumerate(zip(row, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _describe(schema: dict[str, Any]) -> str:
    options = schema.get("anyOf") or [schema]
    kinds: list[str] = []
    for option in options:
        if "enum" in option:
            kinds.append(" | ".join(str(v) for v in option["enum"]))
        elif "const" in option:
            kinds.append(str(option["const"]))
        elif option.get("type") and option.get("type") != "null":
            kinds.append(str(option["type"]))
    text = " | ".join(kinds) or "any"
    if "default" in schema and schema["default"] is not None:
        text += f"  (default {schema['default']})"
    return text


def render_models(models: list[ModelInfo]) -> str:
    lines: list[str] = []
    for model in models:
        aliases = f"  (also {', '.join(model.aliases)})" if model.aliases else ""
        lines.append(f"{model.id}  POST {model.route}{aliases}")
        for name, schema in model.fields.items():
            if name == "model":
                continue
            mark = "*" if name in model.required else " "
            lines.append(f"  {name + mark:26} {_describe(schema)}")
        lines.append("")
    lines.append("* required")
    return "\n".join(lines)
