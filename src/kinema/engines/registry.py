"""Finding, configuring and loading engines.

Engines are discovered through the `kinema.engines` entry-point group (name ->
`module:Class`); Kinema's own engines register there too (pyproject.toml), so a package
installed beside Kinema adds one with no change here. Each enabled engine is built with
its typed options from `Settings.engine_options`.

The load contract: an engine that cannot run here (a missing package or model file,
found by `Engine.unavailable()` without importing anything, or a `load()` that raises in
a worker) is *disabled* with one log line. Its capabilities are withdrawn: the API refuses
requests that need it with a 400 naming the engine and what to install, and a worker
never claims them. One broken engine never stops a worker or the API.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from kinema.engines.base import Engine, EngineOptions
from kinema.errors import ConfigError

log = logging.getLogger("kinema.engines")

GROUP = "kinema.engines"


def discover() -> dict[str, EntryPoint]:
    """Every installed engine: entry-point name -> entry point (not imported yet)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def engine_class(name: str) -> type[Engine]:
    found = discover()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"unknown engine '{name}' (installed engines: {known})")
    cls = found[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise ConfigError(f"engine '{name}' ({found[name].value}) is not a kinema Engine class")
    return cls


def resolve_secrets(
    engine: str, raw: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """`{"api_key_env": "NAME"}` -> `{"api_key": environ["NAME"]}`: secrets are named by
    the variable that holds them, so they never sit in a config file."""
    resolved: dict[str, Any] = {}
    for key, value in raw.items():
        if key.endswith("_env") and isinstance(value, str):
            target = key.removesuffix("_env")
            if value not in environ:
                raise ConfigError(
                    f"engine '{engine}': option '{key}' names the environment variable "
                    f"'{value}', which is not set"
                )
            resolved[target] = environ[value]
        else:
            resolved[key] = value
    return resolved


def build_options(
    cls: type[Engine], name: str, raw: Mapping[str, Any], environ: Mapping[str, str]
) -> EngineOptions:
    try:
        return cls.Options.model_validate(resolve_secrets(name, raw, environ))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "options"
            if err["type"] == "extra_forbidden":
                accepted = ", ".join(cls.Options.model_fields) or "none"
                problems.append(f"unknown option '{where}' (accepted: {accepted})")
            else:
                problems.append(f"option '{where}': {err['msg']}")
        raise ConfigError(f"engine '{name}': " + "; ".join(problems)) from None


def instantiate(cls: type[Engine], options: EngineOptions) -> Engine:
    # Engines written before options existed may define `__init__(self)` with no
    # parameter: those are built the way they always were.
    if len(inspect.signature(cls).parameters) == 0:
        engine = cls()
        engine.options = options
        return engine
    return cls(options)


@dataclass
class EngineSet:
    """The enabled engines of one process, and the ones that could not run here."""

    engines: dict[str, Engine] = field(default_factory=dict)  # in priority order
    disabled: dict[str, str] = field(default_factory=dict)  # name -> why
    offers: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> capabilities

    @classmethod
    def configure(
        cls,
        names: list[str],
        options: Mapping[str, Mapping[str, Any]],
        environ: Mapping[str, str] | None = None,
    ) -> EngineSet:
        """Build the enabled engines with their options (ConfigError for an unknown
        engine or option) and disable those that cannot run here. Imports no heavy
        module: safe in the API process."""
        environ = os.environ if environ is None else environ
        found = cls()
        for name in dict.fromkeys(names):
            engine_cls = engine_class(name)
            engine = instantiate(
                engine_cls, build_options(engine_cls, name, options.get(name, {}), environ)
            )
            found.offers[name] = engine_cls.capabilities
            reason = engine.unavailable()
            if reason is not None:
                found.disable(name, reason)
                continue
            found.engines[name] = engine
            found.offers[name] = engine.offered()
        return found

    @classmethod
    def of(cls, engines: list[Engine]) -> EngineSet:
        """An engine set from ready-built engines (tests, embedding), in priority order."""
        found = cls()
        for engine in engines:
            found.offers[engine.name] = engine.capabilities
            reason = engine.unavailable()
            if reason is not None:
                found.disable(engine.name, reason)
                continue
            found.engines[engine.name] = engine
            found.offers[engine.name] = engine.offered()
        return found

    def disable(self, name: str, reason: str) -> None:
        self.engines.pop(name, None)
        self.disabled[name] = reason
        log.warning("engine %s disabled: %s", name, reason)

    def load(self) -> None:
        """Load every engine (a worker's start-up); one that fails is disabled."""
        for name, engine in list(self.engines.items()):
            try:
                engine.load()
            except Exception as exc:  # any failure to load disables only this engine
                self.disable(name, f"load() failed: {type(exc).__name__}: {exc}")

    def routes(self) -> dict[str, str]:
        """capability -> the first working engine offering it (earlier engines win)."""
        table: dict[str, str] = {}
        for name in self.engines:
            for capability in sorted(self.offers[name]):
                table.setdefault(capability, name)
        return table

    def why_not(self, capability: str) -> list[tuple[str, str]]:
        """(engine, reason) for each disabled engine that would have served `capability`."""
        return [
            (name, reason)
            for name, reason in self.disabled.items()
            if capability in self.offers.get(name, frozenset())
        ]
