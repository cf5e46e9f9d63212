"""Benchmark: the poster and spritesheet of a finished 5 s 720p video (`make_posters`, now
made on the first request for either rather than at completion), against the same
function decoding every frame (`skip_frames=False`, how it worked before), in the same
run.

Two videos: one as Kinema's x264 settings write it (a key frame every few seconds: only
the non-reference frames can be skipped) and one with a key frame each second, as
provider uploads often have (the key frames alone are decoded). CPU seconds of this
process, median of interleaved rounds; the wall clock follows them on an idle machine.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from bench.api import _row

ROUNDS = 7
WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 25, 125


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _frames() -> Iterator[Any]:
    """A textured image panning: detail x264 cannot skip, like a real clip."""
    import cv2
    import numpy as np

    noise = np.random.default_rng(1).integers(0, 255, (HEIGHT + 200, WIDTH + 200, 3), np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 6).astype(np.float32)
    base = np.clip((blurred - blurred.mean()) * 8 + 128, 0, 255).astype(np.uint8)  # contrast
    for i in range(FRAMES):
        y, x = i % 200, (2 * i) % 200
        yield np.ascontiguousarray(base[y : y + HEIGHT, x : x + WIDTH])


def _every_second(path: Path) -> None:
    """The same frames with a key frame each second (x264 `-g 25`, no scene cuts)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(FPS), "sc_threshold": "0"}
        for frame in _frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _cpu_medians(runs: list[Callable[[], object]]) -> list[float]:
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for run, taken in zip(runs, samples, strict=True):
            start = _cpu()
            run()
            taken.append(_cpu() - start)
    return [statistics.median(taken) for taken in samples]


def run() -> list[dict[str, Any]]:
    from kinema.media.encode import write_mp4
    from kinema.media.posters import make_posters

    rows = []
    with tempfile.TemporaryDirectory(prefix="kinema-bench-posters-") as tmp:
        ours, keyed = Path(tmp) / "kinema.mp4", Path(tmp) / "keyed.mp4"
        write_mp4(ours, _frames(), fps=FPS, width=WIDTH, height=HEIGHT, audio=None)
        _every_second(keyed)
        for path, label in ((ours, "Kinema's x264 GOP"), (keyed, "a key frame each second")):
            out = Path(tmp) / "out"
            skipping, every = _cpu_medians([
                partial(make_posters, path, out),
                partial(make_posters, path, out, skip_frames=False),
            ])  # fmt: skip
            rows.append(_row(
                f"poster + spritesheet, 5 s 720p ({label}), CPU", skipping * 1000, "ms",
                every * 1000, "< 1×",
            ))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
