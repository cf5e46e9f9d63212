"""The client half of the `kinema` command: generate, status, download, models, quote,
cancel, ls, rm. Built on `kinema.Client`; errors are one line on stderr (never a
traceback) and exit codes are 0 ok, 1 the server or the job said no, 2 a bad command line
or request, 130 Ctrl-C.

The commands are in `cli_client_commands.py`, what they print in `cli_client_output.py`;
this module is their command line."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from kinema.cli_client_commands import (
    cmd_cancel,
    cmd_download,
    cmd_generate,
    cmd_ls,
    cmd_models,
    cmd_quote,
    cmd_rm,
    cmd_status,
    guarded,
    parse_sets,
)
from kinema.cli_client_output import (
    BAR_WIDTH,
    Progress,
    render_models,
    render_quote,
    render_table,
)
from kinema.client._core import COMPLETED, DEFAULT_WAIT_TIMEOUT, ERROR, GENERATING, QUEUED

# What this module offered before its split (cli.py and the tests import from here).
__all__ = [
    "BAR_WIDTH",
    "OneLineParser",
    "Progress",
    "add_commands",
    "cmd_cancel",
    "cmd_download",
    "cmd_generate",
    "cmd_ls",
    "cmd_models",
    "cmd_quote",
    "cmd_rm",
    "cmd_status",
    "guarded",
    "parse_sets",
    "render_models",
    "render_quote",
    "render_table",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the fix, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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
