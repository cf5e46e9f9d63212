"""The `kinema` command: serve, worker, keys (the server side: builds the one Settings
object from the environment (KINEMA_*) plus flags, and hands it down) and the client side,
generate, status, download, models (`kinema.cli_client`)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from pydantic import ValidationError

from kinema.errors import ConfigError
from kinema.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "workers", "ssl_certfile", "ssl_keyfile"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "engines", None):
        overrides["engines"] = args.engines
    return Settings(**overrides)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kinema.api import create_app
    from kinema.worker.supervisor import WorkerPool

    settings = _tls(_settings(args), args.tls_self_signed)  # checked before anything runs
    app = create_app(settings)  # runs migrations before any worker starts
    store = app.state.store
    if not settings.api_key and not store.list_keys():
        # A fresh install: make the first key so `make serve` is usable at once.
        key, secret = store.create_key("default", None)
        print(
            f"\nNo API keys yet; created key '{key.name}' ({key.id}). Use it as\n"
            f"  Authorization: Bearer {secret}\n"
            "It is shown only this once (`kinema keys create` makes more).\n",
            file=sys.stderr,
            flush=True,
        )
    pool = WorkerPool(settings, settings.workers)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", access_log=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile,
    )  # fmt: skip
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers in place that lands here instead of killing us before the workers drain.
    stopped_by: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopped_by.append(signum))
    pool.start()
    # Everything built so far (app, schemas, SQLAlchemy metadata) lives as long as the
    # process: freezing it keeps the cyclic GC from re-scanning it on the request path.
    gc.collect()
    gc.freeze()
    try:
        uvicorn.Server(config).run()
    finally:
        pool.stop()
    return 0


def _tls(settings: Settings, self_signed: bool) -> Settings:
    """Check the HTTPS settings (a ConfigError, exit 2, names the flag); with
    `--tls-self-signed`, the data dir's local CA and certificate, made or reused."""
    from kinema import tls

    cert, key = settings.ssl_certfile, settings.ssl_keyfile
    if self_signed:
        if cert or key:
            raise ConfigError(
                "--tls-self-signed makes its own certificate: drop --ssl-certfile/"
                "--ssl-keyfile (KINEMA_SSL_CERTFILE/KINEMA_SSL_KEYFILE)"
            )
        made = tls.ensure_self_signed(settings.data_dir, settings.host)
        # The same settings reach the workers (child_environment), so the webhooks they
        # send carry https:// download links too.
        settings = settings.model_copy(
            update={"ssl_certfile": made.certfile, "ssl_keyfile": made.keyfile}
        )
        state = "made" if made.issued else "reused"
        print(
            f"\nHTTPS with a certificate from Kinema's local CA ({state}; covers "
            f"{', '.join(made.names)}). Clients trust the CA with\n"
            f"  NODE_EXTRA_CA_CERTS={made.ca.resolve()}   (Node)\n"
            f"  SSL_CERT_FILE={made.ca.resolve()}   (Python httpx; REQUESTS_CA_BUNDLE for "
            "requests)\n"
            f"  curl --cacert {made.ca.resolve()}\n",
            file=sys.stderr,
            flush=True,
        )
    elif bool(cert) != bool(key):
        given, missing = ("--ssl-certfile", "--ssl-keyfile") if cert else (
            "--ssl-keyfile", "--ssl-certfile")  # fmt: skip
        raise ConfigError(
            f"{given} needs {missing} (KINEMA_{missing[2:].replace('-', '_').upper()}) too"
        )
    if settings.ssl_certfile and settings.ssl_keyfile:
        tls.check_pair(settings.ssl_certfile, settings.ssl_keyfile)
    return settings


def cmd_worker(args: argparse.Namespace) -> int:
    from kinema.worker import serve_forever

    supervisor = os.environ.get("KINEMA_SUPERVISOR_PID")  # set by `kinema serve`'s pool
    serve_forever(_settings(args), int(supervisor) if supervisor else None)
    return 0


def _store(args: argparse.Namespace) -> Any:
    """The key store `kinema keys` works on: a server's admin API when a base URL is
    given (`--base-url`, or KINEMA_BASE_URL without `--data-dir`), else the database."""
    from kinema.store import open_store

    base_url = getattr(args, "base_url", None)
    if base_url is None and getattr(args, "data_dir", None) is None:
        base_url = os.environ.get("KINEMA_BASE_URL")
    if base_url:
        return RemoteKeys(
            base_url, getattr(args, "api_key", None) or os.environ.get("KINEMA_API_KEY")
        )
    return open_store(_settings(args).resolved_database_url)


class RemoteKeys:
    """`kinema keys` over a server's admin API (`/v2/admin/keys`), with an admin key."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        import httpx

        if not api_key:
            _fail("a remote `kinema keys` needs an admin key: --api-key or KINEMA_API_KEY")
        self.base_url = base_url.rstrip("/")
        self.admins: set[str] = set()
        self.http = httpx.Client(
            base_url=self.base_url + "/v2/admin", timeout=30,
            headers={"Authorization": f"Bearer {api_key}"},
        )  # fmt: skip

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {self.base_url}: {exc}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            _fail(f"{self.base_url} answered {response.status_code}: {message}")
        return response.json()

    @staticmethod
    def _key(data: dict[str, Any]) -> Any:
        from kinema.store import ApiKey

        def ts(value: str | None) -> float | None:
            return None if value is None else datetime.fromisoformat(value).timestamp()

        return ApiKey(
            data["id"], data["name"], data["prefix"], data["credits"],
            ts(data["created_at"]) or 0.0, ts(data["revoked_at"]),
        )  # fmt: skip

    def create_key(self, name: str, credits: int | None, admin: bool = False) -> tuple[Any, str]:
        data = self._call("POST", "/keys", {"name": name, "credits": credits, "admin": admin})
        return self._key(data), data["secret"]

    def list_keys(self) -> list[Any]:
        self.admins.clear()
        keys = []
        for data in self._call("GET", "/keys")["data"]:
            keys.append(self._key(data))
            if data["admin"]:
                self.admins.add(data["id"])
        return keys

    def admin_key_ids(self) -> set[str]:
        return self.admins

    def revoke_key(self, key: str) -> Any:
        data = self._call("POST", f"/keys/{quote(key, safe='')}/revoke")
        return None if data is None else self._key(data)

    def add_credits(self, key: str, credits: int | None) -> Any:
        body = {"unlimited": True} if credits is None else {"add": credits}
        data = self._call("POST", f"/keys/{quote(key, safe='')}/credit", body)
        return None if data is None else self._key(data)


def _fail(message: str) -> NoReturn:
    print(f"kinema: {message}", file=sys.stderr)
    raise SystemExit(1)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def cmd_keys_create(args: argparse.Namespace) -> int:
    store = _store(args)
    if isinstance(store, RemoteKeys):
        key, secret = store.create_key(args.name, args.credits, admin=args.admin)
    else:
        key, secret = store.create_key(args.name, args.credits)
        if args.admin:
            store.set_admin(key.id, True)
    credits = "unlimited" if key.credits is None else f"{key.credits} credits"
    role = "admin key" if args.admin else "key"
    print(f"Created {role} {key.id} ({args.name}, {credits}). Store it now; it is not shown again:")
    print(secret)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    store = _store(args)
    keys = store.list_keys()
    admins = store.admin_key_ids()
    print(f"{'ID':18} {'PREFIX':12} {'NAME':20} {'CREDITS':>14} {'CREATED':17} {'REVOKED':17} ROLE")
    for k in keys:
        credits = "unlimited" if k.credits is None else str(k.credits)
        print(
            f"{k.id:18} {k.prefix:12} {k.name[:20]:20} {credits:>14} "
            f"{_when(k.created_at):17} {_when(k.revoked_at):17} {'admin' if k.id in admins else ''}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    key = _store(args).revoke_key(args.key)
    if key is None:
        print(f"kinema: no active key matches '{args.key}'", file=sys.stderr)
        return 1
    print(f"Revoked {key.id} ({key.name}).")
    return 0


def cmd_keys_credit(args: argparse.Namespace) -> int:
    credits = None if args.unlimited else args.add
    key = _store(args).add_credits(args.key, credits)
    if key is None:
        print(f"kinema: no key matches '{args.key}'", file=sys.stderr)
        return 1
    balance = "unlimited" if key.credits is None else str(key.credits)
    print(f"{key.id} ({key.name}) balance: {balance}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from kinema.setup_command import run_setup

    return run_setup(engines=args.engines, check_only=args.check, quiet=args.quiet)


def build_parser() -> argparse.ArgumentParser:
    from kinema.cli_client import OneLineParser, add_commands

    parser = OneLineParser(prog="kinema", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    data_dir = OneLineParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, help="default ./.kinema (KINEMA_DATA_DIR)")

    serve = sub.add_parser("serve", parents=[data_dir], help="API + embedded workers")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    serve.add_argument("--engines", help="comma-separated engines (default: all four)")
    https = serve.add_argument_group("HTTPS")
    https.add_argument("--ssl-certfile", type=Path, help="PEM certificate (KINEMA_SSL_CERTFILE)")
    https.add_argument("--ssl-keyfile", type=Path, help="its PEM private key (KINEMA_SSL_KEYFILE)")
    https.add_argument(
        "--tls-self-signed", action="store_true",
        help="serve HTTPS with a local CA + certificate kept in <data-dir>/tls (prints the CA)",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", parents=[data_dir], help="a standalone worker")
    worker.add_argument("--engines", help="comma-separated engines this machine runs")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser(
        "keys", help="manage API keys (the database; a server's admin API with --base-url)"
    ).add_subparsers(dest="keys_command", required=True)
    remote = OneLineParser(add_help=False)  # `kinema keys` through a server's admin API
    remote.add_argument("--base-url", help="a server's URL (default $KINEMA_BASE_URL)")
    remote.add_argument("--api-key", help="an admin key (default $KINEMA_API_KEY)")
    target = OneLineParser(add_help=False, parents=[data_dir, remote])
    create = keys.add_parser("create", parents=[target], help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=int, help="balance (default: unlimited)")
    create.add_argument("--admin", action="store_true", help="an operator key (admin API, console)")
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", parents=[target], help="list keys")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", parents=[target], help="revoke a key")
    revoke.add_argument("key", help="key id or the key's first 10 characters")
    revoke.set_defaults(func=cmd_keys_revoke)
    credit = keys.add_parser("credit", parents=[target], help="top up a key's balance")
    credit.add_argument("key", help="key id or the key's first 10 characters")
    amount = credit.add_mutually_exclusive_group(required=True)
    amount.add_argument("--add", type=int, help="credits to add (2,000,000 = $1)")
    amount.add_argument("--unlimited", action="store_true")
    credit.set_defaults(func=cmd_keys_credit)

    from kinema.setup_command import add_arguments as setup_arguments

    setup = sub.add_parser(
        "setup", help="install what pip extras cannot (the face-landmark model); check engines"
    )
    setup_arguments(setup)
    setup.set_defaults(func=cmd_setup)

    add_commands(sub)
    from kinema.cli_webhooks import add_commands as add_webhook_commands

    add_webhook_commands(sub, data_dir)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _logging(args.log_level.upper())
    try:
        return int(args.func(args))
    except (ValidationError, ConfigError) as exc:
        print(f"kinema: invalid settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
