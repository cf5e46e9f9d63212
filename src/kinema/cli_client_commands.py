"""The commands of the client half of `kinema` (`cli_client.py` registers them): each
one call or a few on `kinema.Client`, every SDK error as one line on stderr with what to
do about it (`guarded`)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from kinema.cli_client_output import Progress, render_models, render_quote, render_table
from kinema.client import errors
from kinema.client._core import DEFAULT_BASE_URL
from kinema.client._inputs import coerce_fields
from kinema.client._resources import MAX_PAGE
from kinema.client.models import Generation, GenerationBase
from kinema.client.sync import Client


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


@guarded
def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models.list()
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in models], indent=2))
    else:
        print(render_models(models))
    return 0
