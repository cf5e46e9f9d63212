"""Upstream providers: models rendered by a provider the operator has an account with (or
their own GPU server), behind Kinema's API, keys, credits, storage and durability.

`KINEMA_UPSTREAMS` names provider instances (`kind`, `base_url`, `api_key` or
`api_key_env`, timeouts, concurrency, per-model field overrides); `KINEMA_ROUTES` lists
per model the backends (local engine or upstream names) that may render it, in order.
The submit picks the first that serves the request's capability and records it as the
job's backend; the worker hands upstream jobs to one asyncio loop (`runner.py`), so
waiting on them holds no worker slot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kinema.engines.registry import resolve_secrets
from kinema.errors import ConfigError
from kinema.providers.aimlapi import AimlApiOptions, AimlApiProvider
from kinema.providers.base import Provider, UpstreamOptions
from kinema.providers.fal import FalProvider
from kinema.providers.gemini import GeminiProvider
from kinema.providers.openai import OpenAIVideosProvider
from kinema.providers.replicate import ReplicateProvider
from kinema.settings import Settings
from kinema.specs.passthrough import PASSTHROUGH

KINDS: dict[str, type[Provider]] = {
    provider.kind: provider
    for provider in (
        AimlApiProvider,
        OpenAIVideosProvider,
        FalProvider,
        ReplicateProvider,
        GeminiProvider,
    )
}
# A kind with options of its own (the rest take UpstreamOptions as they are).
OPTIONS: dict[str, type[UpstreamOptions]] = {"aimlapi": AimlApiOptions}


def _options(name: str, raw: Mapping[str, Any], environ: Mapping[str, str]) -> UpstreamOptions:
    try:
        resolved = resolve_secrets(f"upstream {name}", raw, environ)
        options = OPTIONS.get(str(raw.get("kind")), UpstreamOptions).model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"upstream '{name}': {problems}") from None
    if options.kind not in KINDS:
        raise ConfigError(
            f"upstream '{name}': unknown kind '{options.kind}' (known: {', '.join(sorted(KINDS))})"
        )
    return options


def build_providers(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, Provider]:
    """Every configured upstream, with its secret resolved (ConfigError when wrong)."""
    environ = os.environ if environ is None else environ
    built: dict[str, Provider] = {}
    for name, raw in settings.upstreams.items():
        options = _options(name, raw, environ)
        built[name] = KINDS[options.kind](name, options)
    return built


def offered(provider: Provider) -> frozenset[str]:
    caps = provider.capabilities
    if provider.options.capabilities is not None:
        caps = caps & frozenset(provider.options.capabilities)
    if getattr(provider.options, "passthrough", False):
        caps = caps | {PASSTHROUGH}
    return caps


def upstream_offers(settings: Settings) -> dict[str, frozenset[str]]:
    """name -> capabilities of each configured upstream, without resolving secrets (the
    API process routes with this)."""
    offers: dict[str, frozenset[str]] = {}
    for name, raw in settings.upstreams.items():
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ConfigError(
                f"upstream '{name}': unknown kind '{kind}' (known: {', '.join(sorted(KINDS))})"
            )
        caps = KINDS[kind].capabilities
        if raw.get("capabilities") is not None:
            caps = caps & frozenset(raw["capabilities"])
        if kind == "aimlapi" and raw.get("passthrough") is True:
            caps = caps | {PASSTHROUGH}
        offers[name] = caps
    return offers


def choose_backend(
    route: list[str],
    capability: str,
    fallback: str | None,
    local: Mapping[str, frozenset[str]],
    upstream: Mapping[str, frozenset[str]],
) -> tuple[str, str] | None:
    """(backend, capability): the first backend of `route` serving the capability, else
    the first serving the fallback; None when none does."""
    for wanted in (capability, fallback):
        if wanted is None:
            continue
        for backend in route:
            offers = local.get(backend) or upstream.get(backend) or frozenset()
            if wanted in offers:
                return backend, wanted
    return None


def route_of(settings: Settings, model: str) -> list[str]:
    """The model's route: under the id it was asked by or any alias of the same model."""
    if model in settings.routes:
        return settings.routes[model]
    from kinema.specs import SPECS

    for spec in SPECS:
        if model in spec.MODEL_IDS:
            for alias in spec.MODEL_IDS:
                if alias in settings.routes:
                    return settings.routes[alias]
    return []


def check_routes(settings: Settings, local_names: list[str]) -> None:
    """Every name in `KINEMA_ROUTES` is an upstream or an engine (ConfigError if not)."""
    known = set(settings.upstreams) | set(local_names)
    for model, route in settings.routes.items():
        for backend in route:
            if backend not in known:
                raise ConfigError(
                    f"route for '{model}' names '{backend}', which is neither an upstream "
                    f"nor an enabled engine (known: {', '.join(sorted(known)) or 'none'})"
                )
