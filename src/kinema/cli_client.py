"""The client half of the `kinema` command: generate, status, download, models, quote,
cancel, ls, rm. Built on `kinema.Client`; errors are one line on stderr (never a
traceback) and exit codes are 0 ok, 1 the server or the job said no, 2 a bad command line
or request, 130 Ctrl-C."""

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
from kinema.client._resources import MAX_PAGE
from kinema.client.models import Generation, GenerationBase, ModelInfo, Quote
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


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields of `generate` / `quote`: --set pairs typed by the model's
    schema, and --prompt."""
    fields: dict[str, Any] = coerce_fields(args.model, parse_sets(args.set))
    if args.prompt is not None:
        fields["prompt"] = args.prompt
    return fields


@guarded
def cmd_generate(args: argparse.Namespace) -> int:
    fields = _fields(args)
    with _client(args) as client:
        created = client.videos.create(
            args.model, image=args.image, audio=args.audio, last_image=args.last_image,
            idempotency_key=args.idempotency_key, start_timeout=args.start_timeout,
            run_timeout=args.run_timeout, priority=args.priority, webhook_url=args.webhook_url,
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


def render_quote(quote: Quote) -> str:
    rows = [
        ("model", quote.model), ("backend", quote.backend),
        ("capability", quote.capability), ("credits", quote.credits_used),
    ]  # fmt: skip
    return "\n".join(f"{name:11} {value}" for name, value in rows if value is not None)


@guarded
def cmd_quote(args: argparse.Namespace) -> int:
    fields = _fields(args)
    with _client(args) as client:
        quote = client.videos.quote(
            args.model, image=args.image, audio=args.audio, last_image=args.last_image, **fields
        )
    print(json.dumps(quote.raw, indent=2) if args.json else render_quote(quote))
    return 0


@guarded
def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        generation = client.videos.cancel(args.id)
    if generation.error is not None and generation.error.name == "Cancelled":
        print(f"{generation.id}: cancelled")
    else:  # a running job: its worker stops it at the next step
        print(f"{generation.id}: cancelling (still {generation.status} while its worker stops)")
    return 0


@guarded
def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for generation_id in args.ids:
            client.videos.delete(generation_id)
            print(f"{generation_id}: deleted")
    return 0


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


@guarded
def cmd_ls(args: argparse.Namespace) -> int:
    wanted = None if args.all else args.limit
    with _client(args) as client:
        page_size = MAX_PAGE if wanted is None else min(wanted, MAX_PAGE)
        page = client.videos.list(status=args.status, model=args.model, limit=page_size)
        shown: list[Generation] = []
        more = False
        for current in page.iter_pages():  # fetches the following pages as needed
            if wanted is None:
                shown += current.data
                continue
            room = wanted - len(shown)
            shown += current.data[:room]
            if len(shown) >= wanted:
                more = len(current.data) > room or current.has_more
                break
    if args.json:
        print(json.dumps([g.raw for g in shown], indent=2))
    elif shown:
        print(render_table(shown))
    else:
        print("no generations", file=sys.stderr)
    if more:
        print(f"kinema: showing the newest {len(shown)}; `--all` lists them all", file=sys.stderr)
    return 0


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _request_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and its fields, for generate and quote."""
    parser.add_argument("model", help="e.g. veed/fabric-1.0 (see `kinema models`)")
    parser.add_argument("--prompt")
    parser.add_argument("--image", help="image file or URL (the model's image_url)")
    parser.add_argument("--audio", help="audio file or URL (audio_url)")
    parser.add_argument("--last-image", help="last-frame image file or URL (last_image_url)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any request field, typed by the model's schema (repeatable)",
    )  # fmt: skip


def add_commands(sub: Any) -> None:
    """Register generate / status / download / models / quote / cancel / ls / rm on
    `kinema`'s subparsers."""
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
        "generate", parents=[server, waiting],
        help="create a video, follow its progress live, download it",
    )  # fmt: skip
    _request_arguments(gen)
    gen.add_argument("--no-wait", action="store_true", help="print the id and exit")
    gen.add_argument(
        "--priority", choices=("low", "normal", "high"), help="among this key's queued jobs"
    )
    gen.add_argument("--webhook-url", help="the server POSTs the outcome here (signed)")
    gen.add_argument(
        "--start-timeout", type=float, metavar="SECONDS",
        help="not started by then: the job ends with error Expired (not charged)",
    )  # fmt: skip
    gen.add_argument(
        "--run-timeout", type=float, metavar="SECONDS",
        help="running longer: the job is stopped (error TimedOut)",
    )  # fmt: skip
    gen.add_argument(
        "--idempotency-key", metavar="KEY",
        help="run again with the same key and request: the first job, not a second "
        "(default: a fresh key, reused by the SDK's own retries)",
    )  # fmt: skip
    gen.set_defaults(func=cmd_generate)

    quote = sub.add_parser(
        "quote", parents=[server], help="the price of a request (nothing created or charged)"
    )
    _request_arguments(quote)
    quote.add_argument("--json", action="store_true", help="the raw answer")
    quote.set_defaults(func=cmd_quote)

    status = sub.add_parser("status", parents=[server], help="show a generation")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the raw poll answer")
    status.set_defaults(func=cmd_status)

    download = sub.add_parser(
        "download", parents=[server, waiting], help="wait for a generation and download it"
    )
    download.add_argument("id")
    download.set_defaults(func=cmd_download)

    cancel = sub.add_parser("cancel", parents=[server], help="cancel a queued or running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=cmd_cancel)

    ls = sub.add_parser("ls", parents=[server], help="list your generations, newest first")
    ls.add_argument("--status", choices=(QUEUED, GENERATING, COMPLETED, ERROR))
    ls.add_argument("--model")
    count = ls.add_mutually_exclusive_group()
    count.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="show the newest N (default 20)"
    )
    count.add_argument("--all", action="store_true", help="show them all")
    ls.add_argument("--json", action="store_true", help="the raw poll answers")
    ls.set_defaults(func=cmd_ls)

    rm = sub.add_parser(
        "rm", parents=[server], help="delete generations: their videos and stored inputs"
    )
    rm.add_argument("ids", nargs="+", metavar="ID")
    rm.set_defaults(func=cmd_rm)

    models = sub.add_parser("models", parents=[server], help="the models and their fields")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)
