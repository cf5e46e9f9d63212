"""What the engine benchmarks share: a Context that feeds fixed inputs, and interleaved
median timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from kinema.engines.base import Context
from kinema.specs.base import MediaRef

RUNS = 3


class BenchContext(Context):
    """Inputs by request field; no progress kept, never cancelled."""

    def __init__(self, work: Path, inputs: dict[str, bytes], output_name: str) -> None:
        self.work_dir = work
        self.output_path = work / output_name
        self.inputs = inputs

    def progress(self, fraction: float) -> None:
        pass

    @property
    def cancelled(self) -> bool:
        return False

    def fetch(self, ref: MediaRef) -> bytes:
        return self.inputs[ref.field]


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
