"""`python -m bench [module ...]`: run the benchmark modules (all by default), print one
table and write it as markdown to bench/results/latest.md."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MODULES = (
    "api", "motion", "talking_head", "e2e", "speaking", "morph", "cluster", "pickup", "sse",
    "webhooks", "diffusion", "upstream", "memory", "dubbing", "posters",
)  # fmt: skip
COLUMNS = ("benchmark", "value", "unit", "baseline", "ratio", "target")
RESULTS = Path(__file__).parent / "results" / "latest.md"


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table, padded so it also reads well in a terminal."""
    cells = [list(COLUMNS)] + [[str(row.get(c, "")) for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    names = parser.parse_args().modules or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    # SIGTERM (CI timeouts, `kill`) unwinds like Ctrl-C, so benchmarks stop their servers.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

    rows: list[dict[str, Any]] = []
    failed = []
    for name in names:
        print(f"bench.{name} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            rows += importlib.import_module(f"bench.{name}").run()
        except Exception:
            # Keep the other modules' rows: one broken benchmark should not hide the rest.
            traceback.print_exc()
            failed.append(name)
        print(f"bench.{name}: {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    text = table(rows)
    print(text)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    header = f"# Kinema benchmarks\n\n{time.strftime('%Y-%m-%d %H:%M %Z')} on {machine}.\n\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(header + text + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
