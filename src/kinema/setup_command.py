"""`kinema setup`: install what `pip install kinema[...]` cannot, then say which engines
can run here.

pip extras cannot express the face-landmark model: it ships inside the mediapipe 0.10.21
wheel, which must go in *without its dependencies* (its numpy<2 pin would clash with
ours; Kinema never imports mediapipe, it only reads two .tflite files from it). This
command does that with this interpreter's pip, the same step `make install` runs, and with
`--engines` first installs the `engines` extra's packages too (the pins are read from
Kinema's own metadata, so a source checkout needs no index entry for Kinema itself).

It is idempotent: a step whose packages are already installed at the pinned versions is
skipped without calling pip. It ends with a check of every installed engine
(`EngineSet.configure`, the same check `kinema serve` makes at start-up).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MEDIAPIPE = "mediapipe==0.10.21"  # the last wheel that bundles the face-landmark models
ENGINES_EXTRA = "engines"

# `name==version` (extras allowed): the only requirements checked without calling pip.
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s,;]+)")

Runner = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class EngineCheck:
    name: str
    enabled: bool  # named by KINEMA_ENGINES (Settings.engines)
    problem: str | None  # None: it can run here


def extra_requirements(extra: str = ENGINES_EXTRA, dist: str = "kinema") -> list[str]:
    """The requirement strings of one extra of an installed distribution."""
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    found = []
    for requirement in importlib.metadata.requires(dist) or []:
        spec, _, condition = requirement.partition(";")
        if marker.search(condition):
            found.append(spec.strip())
    return found


def satisfied(requirement: str) -> bool:
    """True when `name==version` is installed at exactly that version. Anything that is
    not a plain pin is left to pip (False)."""
    pin = _PIN.fullmatch(requirement.strip())
    if pin is None:
        return False
    try:
        return importlib.metadata.version(pin.group(1)) == pin.group(2)
    except importlib.metadata.PackageNotFoundError:
        return False


def pip(args: Sequence[str]) -> int:
    """Run this interpreter's pip (the environment Kinema runs in)."""
    command = [sys.executable, "-m", "pip", "install", *args]
    print("  $ " + " ".join(command), flush=True)
    return subprocess.call(command)


def _refresh() -> None:
    # Packages installed by a child pip must be visible to find_spec/metadata here.
    importlib.invalidate_caches()


def install_engine_packages(run: Runner, quiet: bool) -> tuple[bool, bool]:
    """(ok, changed): the `engines` extra's packages, with their dependencies."""
    requirements = extra_requirements()
    missing = [r for r in requirements if not satisfied(r)]
    if not missing:
        print(f"engine packages: already installed ({', '.join(requirements)})")
        return True, False
    print(f"engine packages: installing {', '.join(missing)}", flush=True)
    if satisfied(MEDIAPIPE):
        print(
            "  (pip may report mediapipe's own dependencies as missing or conflicting: "
            "expected, Kinema only reads its model files)",
            flush=True,
        )
    ok = run([*(["--quiet"] if quiet else []), *missing]) == 0
    _refresh()
    return ok, True


def install_face_model(run: Runner, quiet: bool) -> tuple[bool, bool]:
    """(ok, changed): the mediapipe wheel, without its dependencies, for its model files."""
    from kinema.media.face_models import model_missing

    if satisfied(MEDIAPIPE) and model_missing() is None:
        print(f"face-landmark model: already installed ({MEDIAPIPE})")
        return True, False
    print(f"face-landmark model: installing {MEDIAPIPE} without its dependencies", flush=True)
    args = [*(["--quiet"] if quiet else []), "--no-deps"]
    if satisfied(MEDIAPIPE):  # the right version, but its files are gone: put them back
        args.append("--force-reinstall")
    ok = run([*args, MEDIAPIPE]) == 0
    _refresh()
    if ok and model_missing() is not None:
        print(f"kinema setup: {MEDIAPIPE} installed but {model_missing()}", file=sys.stderr)
        return False, True
    return ok, True


def _configuration() -> tuple[list[str], Mapping[str, Mapping[str, Any]], str | None]:
    """(enabled engines, their options, a settings problem) from KINEMA_* / the config
    file; settings that do not validate still let every engine be checked."""
    from pydantic import ValidationError

    from kinema.errors import ConfigError
    from kinema.settings import Settings

    try:
        settings = Settings()
    except (ValidationError, ConfigError) as exc:
        # The default engines, built with their default options.
        return list(Settings.model_construct().engines), {}, f"invalid settings: {exc}"
    return list(settings.engines), settings.engine_options, None


def check_engines(
    enabled: Sequence[str], options: Mapping[str, Mapping[str, Any]]
) -> list[EngineCheck]:
    """Every installed engine (Kinema's own and plugins'), built with its options and
    asked whether it can run here, as `kinema serve` does at start-up."""
    from kinema.engines.registry import EngineSet, discover
    from kinema.errors import ConfigError

    found = discover()
    names = [*[n for n in enabled if n in found], *sorted(n for n in found if n not in enabled)]
    checks = [EngineCheck(n, True, "not installed") for n in enabled if n not in found]
    quiet = logging.getLogger("kinema.engines")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the table below says it once
    try:
        for name in names:
            try:
                engines = EngineSet.configure([name], options)
                problem = engines.disabled.get(name)
            except ConfigError as exc:
                problem = str(exc)
            except Exception as exc:  # a plugin that fails to import is reported, not fatal
                problem = f"cannot be loaded: {type(exc).__name__}: {exc}"
            checks.append(EngineCheck(name, name in enabled, problem))
    finally:
        quiet.setLevel(level)
    return checks


def report(checks: Sequence[EngineCheck]) -> None:
    width = max((len(c.name) for c in checks), default=0)
    print("engines:")
    for check in checks:
        state = "ready" if check.problem is None else f"unavailable: {check.problem}"
        if not check.enabled:
            state += " (not enabled: add it to KINEMA_ENGINES to use it)"
        print(f"  {check.name:{width}}  {state}")


def run_setup(*, engines: bool, check_only: bool, quiet: bool = False, runner: Runner = pip) -> int:
    ok, changed = True, False
    if not check_only:
        if importlib.util.find_spec("pip") is None:
            wanted = [*(extra_requirements() if engines else []), f"{MEDIAPIPE} (--no-deps)"]
            print(
                f"kinema setup: this environment ({sys.executable}) has no pip; install "
                f"{', '.join(wanted)} with the tool that made it",
                file=sys.stderr,
            )
            return 1
        steps = [install_engine_packages] if engines else []
        steps.append(install_face_model)
        for step in steps:
            step_ok, step_changed = step(runner, quiet)
            ok, changed = ok and step_ok, changed or step_changed
            if not step_ok:
                print("kinema setup: pip failed (see above)", file=sys.stderr)
                break
    enabled, options, problem = _configuration()
    if problem:
        print(f"kinema setup: {problem}", file=sys.stderr)
    checks = check_engines(enabled, options)
    report(checks)
    unavailable = [c for c in checks if c.enabled and c.problem is not None]
    if any("missing Python packages" in (c.problem or "") for c in unavailable):
        print("Run `kinema setup --engines` to install the engines' Python packages as well.")
    if changed and ok:
        print("Restart `kinema serve` (and any `kinema worker`) to pick these up.")
    if not ok:
        return 1
    return 1 if check_only and unavailable else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engines",
        action="store_true",
        help=f"also install the '{ENGINES_EXTRA}' extra's packages (what `pip install "
        f"'kinema[{ENGINES_EXTRA}]'` adds)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="install nothing; report the engines and exit 1 if an enabled one cannot run",
    )
    parser.add_argument("--quiet", action="store_true", help="pass --quiet to pip")
