"""What the engine benchmarks share: interleaved median timing (their Context is
`kinema.testing.FakeContext`, fed fixed inputs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

RUNS = 3


def medians(runs: list[Callable[[], None]]) -> list[float]:
    """Median seconds of each callable over RUNS rounds. Rounds interleave the callables,
    so a slow spell on a shared machine hits all of them rather than one."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(RUNS):
        for run, samples in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]
