"""Benchmark: a 5 s first/last-frame morph from MorphEngine at 720p and 1080p vs. a bare
PyAV encode of the same frames.

Same method as bench/motion.py: everything runs in one process, rounds interleave the
engine and its baselines, and the median of RUNS rounds is reported. The engine's time
covers the whole job (decode both JPEGs, fit, estimate the flow, warp and blend every
frame, encode, mux). The last image is the first one seen by a camera that moved right,
down and in, so the flow is trusted and every frame is warped (a cross-fade between
unrelated images is cheaper).

The baseline is what a plain PyAV script would spend on this very clip: the engine's own
frames, drawn beforehand and held in memory, handed to PyAV as rgb24 with the same x264
preset/CRF/pix_fmt. x264's cost depends on the content, and these frames (resampled
every frame) cost it more than the pixel-exact pan of bench/motion.py. Informational
rows compare with the encoder alone on the same frames already in yuv420p (the floor no
way of making this clip goes under), and the CPU seconds of engine and baseline: on a
shared machine the wall-clock ratio moves with the neighbours' load, the CPU one less.
"""

from __future__ import annotations

import io
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RUNS
from bench.motion import CRF, FPS, PRESET, _picture
from kinema.testing import FakeContext

SECONDS = 5.0
FRAMES = round(SECONDS * FPS)
SIZES = ((1280, 720), (1920, 1080))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: x264's included
    return usage.ru_utime + usage.ru_stime


def _medians(runs: list[Callable[[], None]]) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each callable over RUNS interleaved rounds."""
    times: list[list[tuple[float, float]]] = [[] for _ in runs]
    for _ in range(RUNS):
        for run, samples in zip(runs, times, strict=True):
            wall, cpu = time.perf_counter(), _cpu_seconds()
            run()
            samples.append((time.perf_counter() - wall, _cpu_seconds() - cpu))
    return [
        (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
        for samples in times
    ]


def _bare_encode(path: Path, frames: list[Any], pix_fmt_in: str, width: int, height: int) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        stream.thread_type = "AUTO"
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format=pix_fmt_in)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _jpeg(image: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _decoded(jpeg: bytes) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _rows(width: int, height: int, jpegs: dict[str, bytes]) -> list[dict[str, Any]]:
    import cv2

    from kinema.engines.morph import MorphEngine, estimate_flows, render_frames
    from kinema.media.images import fit_image
    from kinema.render_request import FIRST_LAST_FRAME, MediaRef, RenderRequest

    engine = MorphEngine()
    engine.load()
    request = RenderRequest(
        model="bench",
        capability=FIRST_LAST_FRAME,
        image=MediaRef("image_url", "data:"),
        last_image=MediaRef("last_image_url", "data:"),
        duration=SECONDS,
        short_side=height,
        aspect="16:9",
    )
    # The engine's frames exactly: drawn from the JPEGs the engine decodes.
    first, last = (fit_image(_decoded(jpegs[key]), width, height) for key in jpegs)
    flows = estimate_flows(first, last)
    if flows is None:
        raise RuntimeError("the benchmark pair should morph, not cross-fade")
    # ~1.2 GB at 1080p, held for the baselines only; the engine itself streams.
    rgb = [frame.copy() for frame in render_frames(first, last, flows, FRAMES)]
    yuv = [cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420) for frame in rgb]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctx = FakeContext(work, jpegs, output_name="morph.mp4")
        runs: list[Callable[[], None]] = [
            lambda: engine.generate(request, ctx),
            lambda: _bare_encode(work / "bare.mp4", rgb, "rgb24", width, height),
            lambda: _bare_encode(work / "yuv.mp4", yuv, "yuv420p", width, height),
        ]
        for warm_up in runs:  # untimed: caches, thread pools, x264's first init
            warm_up()
        (morph, morph_cpu), (bare, bare_cpu), (floor, _) = _medians(runs)
    label = f"morph 5 s {height}p"
    rows = [
        (label, morph, bare, "≤ 1.6×"),
        (f"{label} vs x264 alone on the same frames", morph, floor, "informational"),
        (f"{label} CPU seconds", morph_cpu, bare_cpu, "informational"),
    ]
    return [
        {
            "benchmark": name,
            "value": round(value, 3),
            "unit": "s",
            "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 2),
            "target": target,
        }
        for name, value, baseline, target in rows
    ]


def run() -> list[dict[str, Any]]:
    import cv2
    import numpy as np

    picture = _picture()
    height, width = picture.shape[:2]
    # The camera moves 4 % right, 3 % down and zooms in 6 %.
    zoom = 1.06
    matrix = np.array(
        [[zoom, 0, -0.04 * width - (zoom - 1) * width / 2],
         [0, zoom, -0.03 * height - (zoom - 1) * height / 2]]
    )  # fmt: skip
    moved = cv2.warpAffine(picture, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)
    jpegs = {"image_url": _jpeg(picture), "last_image_url": _jpeg(moved)}
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        rows += _rows(*size, jpegs)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
