"""`kinema webhooks`: a key's webhook endpoints and signing secret, managed on the server
(like `kinema keys`: straight in the job store named by the settings).

    kinema webhooks add KEY URL [--events completed,failed,...]
    kinema webhooks list KEY
    kinema webhooks remove ENDPOINT_ID
    kinema webhooks secret KEY      # verifies webhooks sent to this key's submits' webhook_url

KEY is a key id or the key's first 10 characters (as `kinema keys list` shows them)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from kinema.errors import ValidationFailed
from kinema.settings import Settings
from kinema.store.webhooks import ALL_EVENTS, DEFAULT_EVENTS


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _store(settings: Settings) -> Any:
    from kinema.store import open_store

    return open_store(settings.resolved_database_url, wakeup=False)


def _key_id(store: Any, key: str) -> str | None:
    for found in store.list_keys():
        if found.id == key or found.prefix == key[:10]:
            return str(found.id)
    return None


def _unknown_key(key: str) -> int:
    print(f"kinema: no key matches '{key}' (see `kinema keys list`)", file=sys.stderr)
    return 1


def cmd_add(args: argparse.Namespace) -> int:
    from kinema.webhooks.endpoints import add_endpoint, events_of

    settings = _settings(args)
    store = _store(settings)
    key_id = _key_id(store, args.key)
    if key_id is None:
        return _unknown_key(args.key)
    try:
        endpoint = add_endpoint(store, settings, key_id, args.url, args.events)
    except ValidationFailed as exc:
        for problem in exc.problems:
            print(f"kinema: {problem.field}: {problem.message}", file=sys.stderr)
        return 2
    print(f"Added endpoint {endpoint.id} for key {key_id}: {endpoint.url}")
    print(f"events: {', '.join(events_of(endpoint))}")
    print(f"signing secret: {endpoint.secret}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from kinema.webhooks.endpoints import events_of

    store = _store(_settings(args))
    key_id = _key_id(store, args.key)
    if key_id is None:
        return _unknown_key(args.key)
    print(f"{'ID':22} {'CREATED':17} {'EVENTS':40} URL")
    for endpoint in store.webhook_endpoints(key_id):
        created = datetime.fromtimestamp(endpoint.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        events = ",".join(e.removeprefix("generation.") for e in events_of(endpoint))
        print(f"{endpoint.id:22} {created:17} {events:40} {endpoint.url}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    removed = _store(_settings(args)).remove_webhook_endpoint(args.endpoint)
    if removed is None:
        print(f"kinema: no webhook endpoint '{args.endpoint}'", file=sys.stderr)
        return 1
    print(f"Removed endpoint {removed.id} ({removed.url}).")
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    key_id = _key_id(store, args.key)
    if key_id is None:
        return _unknown_key(args.key)
    print(store.webhook_secret(key_id))
    return 0


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register `kinema webhooks …` on the top-level subparsers; `parent` adds --data-dir."""
    webhooks = sub.add_parser(
        "webhooks", help="a key's webhook endpoints and signing secret"
    ).add_subparsers(dest="webhooks_command", required=True)
    key_help = "key id or the key's first 10 characters"
    add = webhooks.add_parser(
        "add", parents=[parent], help="add a default webhook endpoint for a key"
    )
    add.add_argument("key", help=key_help)
    add.add_argument("url", help="https URL that receives the events")
    add.add_argument(
        "--events", nargs="+", metavar="EVENT",
        help=f"events to send, space- or comma-separated, from {', '.join(ALL_EVENTS)} "
        f"('generation.' may be left out; default: {', '.join(DEFAULT_EVENTS)})",
    )  # fmt: skip
    add.set_defaults(func=cmd_add)
    listing = webhooks.add_parser("list", parents=[parent], help="list a key's endpoints")
    listing.add_argument("key", help=key_help)
    listing.set_defaults(func=cmd_list)
    remove = webhooks.add_parser("remove", parents=[parent], help="remove an endpoint")
    remove.add_argument("endpoint", help="endpoint id (whep_…)")
    remove.set_defaults(func=cmd_remove)
    secret = webhooks.add_parser(
        "secret", parents=[parent], help="the key's secret for its submits' webhook_url"
    )
    secret.add_argument("key", help=key_help)
    secret.set_defaults(func=cmd_secret)
