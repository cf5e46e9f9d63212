"""The client half of the `kinema` command: generate, status, download, models. Built on
`kinema.Client`; errors are one line on stderr (never a traceback) and exit codes are
0 ok, 1 the server or the job said no, 2 a bad command line or request, 130 Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from kinema.client import errors
from kinema.client._core import (
    COMPLETED,
    DEFAULT_BASE_URL,
    DEFAULT_WAIT_TIMEOUT,
    ERROR,
    GENERATING,
    QUEUED,
)
from kinema.client._inputs import coerce_fields
from kinema.client.models import Generation, GenerationBase, ModelInfo
from kinema.client.sync import Client

BAR_WIDTH = 24


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the fix, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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


def _fail(message: str, code: int = 1) -> int:
    print(f"kinema: {message}", file=sys.stderr)
    return code


def _client(args: argparse.Namespace) -> Client:
    return Client(args.base_url, args.api_key)


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every SDK error as one line with what to do about it."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        # httpx logs each request at INFO; the CLI speaks for itself.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        where = (
            getattr(args, "base_url", None)
            or os.environ.get("KINEMA_BASE_URL")
            or (DEFAULT_BASE_URL)
        )
        try:
            return command(args)
        except errors.LocalValidationError as exc:
            problems = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in exc.details)
            return _fail(f"invalid request: {problems or exc.message}", 2)
        except errors.AuthenticationError:
            return _fail(
                "the server refused the API key (401). Set KINEMA_API_KEY (or AIMLAPI_KEY) "
                "or pass --api-key."
            )
        except errors.APIStatusError as exc:
            return _fail(str(exc))
        except errors.APIConnectionError as exc:
            return _fail(
                f"{exc.message}. Is the server running at {where}? Set KINEMA_BASE_URL or "
                "pass --base-url."
            )
        except errors.KinemaClientError as exc:
            return _fail(exc.message)
        except ValueError as exc:  # e.g. a base URL without http(s)://
            return _fail(str(exc), 2)
        except OSError as exc:
            return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    return run


def _command(verb: str, generation_id: str, output: str | None = None) -> str:
    """A `kinema` command line to paste. Ids may start with "-", which argparse would take
    for an option: those go after `--`."""
    target = f" -o {output}" if output else ""
    if generation_id.startswith("-"):
        return f"kinema {verb}{target} -- {generation_id}"
    return f"kinema {verb} {generation_id}{target}"


def _resume_hint(generation_id: str, output: str | None) -> str:
    return _command("download", generation_id, output)


def _wait_and_download(
    client: Client,
    generation_id: str,
    output: str | None,
    timeout: float | None,
    seen: GenerationBase | None = None,
) -> int:
    progress = Progress(sys.stderr)
    if seen is not None:
        # What the submit (or last read) said comes first, so the report starts where the
        # job did, however fast a worker then picks it up.
        progress(seen)
    try:
        done = client.videos.wait(generation_id, timeout=timeout, on_progress=progress)
    except KeyboardInterrupt:
        progress.finish()
        return _fail(
            f"stopped waiting; generation {generation_id} keeps running on the server. "
            f"Resume with: {_resume_hint(generation_id, output)}",
            130,
        )
    except errors.DeadlineExceeded as exc:
        progress.finish()
        return _fail(f"{exc.message}. Resume with: {_resume_hint(generation_id, output)}")
    finally:
        progress.finish()  # end the bar's line before any other message
    return _download(done, output)


def _download(generation: Generation, output: str | None) -> int:
    try:
        path = generation.download(output)
    except KeyboardInterrupt:
        return _fail(
            "download interrupted; the partial .part file is kept. Resume with: "
            f"{_resume_hint(generation.id, output)}",
            130,
        )
    print(path)
    return 0


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        if key.strip() == "model":
            raise ValueError("the model is the first argument of `kinema generate`, not --set")
        fields[key.strip()] = value
    return fields


@guarded
def cmd_generate(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = coerce_fields(args.model, parse_sets(args.set))
    if args.prompt is not None:
        fields["prompt"] = args.prompt
    with _client(args) as client:
        created = client.videos.create(
            args.model, image=args.image, audio=args.audio, last_image=args.last_image,
            **fields,
        )  # fmt: skip
        if args.no_wait:
            print(created.id)
            print(
                f"kinema: submitted. Check with `{_command('status', created.id)}`, fetch with "
                f"`{_resume_hint(created.id, args.output)}`.",
                file=sys.stderr,
            )
            return 0
        return _wait_and_download(client, created.id, args.output, args.timeout, created)


@guarded
def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        generation = client.videos.get(args.id)
    if args.json:
        print(json.dumps(generation.raw, indent=2))
        return 0
    rows = [("id", generation.id), ("status", generation.raw_status or generation.status)]
    rows += [("model", generation.model)] if generation.model else []
    if generation.progress is not None:
        rows.append(("progress", f"{generation.progress:.0f}%"))
    if generation.queue_position is not None:
        rows.append(("queue", str(generation.queue_position)))
    if generation.video is not None:
        v = generation.video
        rows.append(("video", v.url))
        size = f"{v.width}x{v.height}" if v.width and v.height else "?"
        rows.append(("details", f"{size}, {v.duration} s, {v.file_size} bytes"))
    if generation.error is not None:
        rows.append(("error", f"{generation.error.name}: {generation.error.message}"))
    if generation.credits_used is not None:
        rows.append(("credits", str(generation.credits_used)))
    for name, value in rows:
        print(f"{name:9} {value}")
    return 1 if generation.failed else 0


@guarded
def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        generation: Generation = client.videos.get(args.id)
        if generation.completed:
            return _download(generation, args.output)
        if generation.failed:
            raise errors.GenerationFailed(generation)
        return _wait_and_download(client, generation.id, args.output, args.timeout)


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


@guarded
def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models.list()
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in models], indent=2))
    else:
        print(render_models(models))
    return 0


def add_commands(sub: Any) -> None:
    """Register generate / status / download / models on `kinema`'s subparsers."""
    server = OneLineParser(add_help=False)
    server.add_argument("--base-url", help="default $KINEMA_BASE_URL or http://127.0.0.1:8000")
    server.add_argument("--api-key", help="default $KINEMA_API_KEY, else $AIMLAPI_KEY")
    waiting = OneLineParser(add_help=False)
    waiting.add_argument(
        "--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT,
        help=f"seconds to wait for the job (default {DEFAULT_WAIT_TIMEOUT:g})",
    )  # fmt: skip
    waiting.add_argument("-o", "--output", help="file or directory (default: ./<id>.mp4)")

    gen = sub.add_parser(
        "generate", parents=[server, waiting], help="create a video, wait, download it"
    )
    gen.add_argument("model", help="e.g. veed/fabric-1.0 (see `kinema models`)")
    gen.add_argument("--prompt")
    gen.add_argument("--image", help="image file or URL (the model's image_url)")
    gen.add_argument("--audio", help="audio file or URL (audio_url)")
    gen.add_argument("--last-image", help="last-frame image file or URL (last_image_url)")
    gen.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any request field, typed by the model's schema (repeatable)",
    )  # fmt: skip
    gen.add_argument("--no-wait", action="store_true", help="print the id and exit")
    gen.set_defaults(func=cmd_generate)

    status = sub.add_parser("status", parents=[server], help="show a generation")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the raw poll answer")
    status.set_defaults(func=cmd_status)

    download = sub.add_parser(
        "download", parents=[server, waiting], help="wait for a generation and download it"
    )
    download.add_argument("id")
    download.set_defaults(func=cmd_download)

    models = sub.add_parser("models", parents=[server], help="the models and their fields")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)
