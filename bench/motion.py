"""Benchmark: a 5 s 720p clip from MotionEngine vs. a bare PyAV encode of as many frames.

Both run in the same process, one after the other, so the ratio holds on any machine.
The engine's time covers everything a job does (decode the JPEG, fit, warp, encode, mux).
The baseline encodes the same number of frames at the same size with the same x264
preset/CRF/pix_fmt: a fixed synthetic sequence (sliding 720p windows over the same
picture, i.e. a pan the encoder has to track) handed to PyAV as rgb24, the way a plain
PyAV script does it. A second row compares against the encoder alone on the engine's own
frames (warped and converted to yuv420p outside the timing): x264's cost depends on the
content, and that is the floor no way of producing this clip can go under, so the ratio
is exactly the engine's overhead. A third row times the same clip with `style="anime"`
against the same bare encode: the one-off stylisation of the fitted still is included
(the frames are then warps of that still, so the per-frame cost does not change).
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import medians
from kinema.testing import FakeContext

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 25, 5.0
FRAMES = round(SECONDS * FPS)
PRESET, CRF = "veryfast", 23


def _picture() -> Any:
    """A 1920x1080 RGB test picture with smooth gradients, texture and hard edges, so
    the encoder sees something like a photo rather than flat colour or pure noise."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(2024)
    coarse = rng.integers(0, 256, (27, 48, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, image.shape)
    image = np.clip(image + grain, 0, 255).astype(np.uint8)
    for i in range(12):
        centre = (int(rng.integers(0, 1920)), int(rng.integers(0, 1080)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(40, 200)), colour, 6 + i)
    cv2.putText(image, "KINEMA", (420, 600), cv2.FONT_HERSHEY_SIMPLEX, 9, (250, 250, 250), 24)
    return image


def _bare_encode(path: Path, frames: Callable[[], Any], pix_fmt_in: str) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        stream.thread_type = "AUTO"
        for index, array in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(array, format=pix_fmt_in)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def run() -> list[dict[str, Any]]:
    import cv2
    from PIL import Image

    from kinema.engines.motion import MotionEngine, choose_move, render_frames
    from kinema.media.images import fit_image
    from kinema.render_request import IMAGE_TO_VIDEO, MediaRef, RenderRequest

    picture = _picture()
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    # The baseline's frames: windows sliding one pixel a frame over the fitted picture.
    wide = fit_image(picture, WIDTH + FRAMES, HEIGHT + FRAMES * HEIGHT // WIDTH)

    def rgb_frames() -> Any:
        return (wide[i * HEIGHT // WIDTH :][:HEIGHT, i : i + WIDTH] for i in range(FRAMES))

    engine = MotionEngine()
    engine.load()
    request = RenderRequest(
        model="bench",
        capability=IMAGE_TO_VIDEO,
        prompt="slow zoom in on the scene",
        image=MediaRef("image_url", "data:"),
        duration=SECONDS,
        short_side=HEIGHT,
        aspect="16:9",
        seed=7,
    )
    styled = dataclasses.replace(request, style="anime")
    move = choose_move(request.prompt, request.negative_prompt, request.seed)
    fitted = fit_image(picture, WIDTH, HEIGHT)
    # ~170 MB held for the floor measurement only; the engine itself streams.
    yuv = [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in render_frames(fitted, move, FRAMES)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctx = FakeContext(work, {"image_url": jpeg}, output_name="motion.mp4")
        runs: list[Callable[[], None]] = [
            lambda: engine.generate(request, ctx),
            lambda: engine.generate(styled, ctx),
            lambda: _bare_encode(work / "bare.mp4", rgb_frames, "rgb24"),
            lambda: _bare_encode(work / "yuv.mp4", lambda: yuv, "yuv420p"),
        ]
        for warm_up in runs:  # untimed: caches, thread pools, x264's first init
            warm_up()
        motion, anime, bare, floor = medians(runs)
    return [
        {
            "benchmark": "motion 5 s 720p",
            "value": round(motion, 3),
            "unit": "s",
            "baseline": round(bare, 3),
            "ratio": round(motion / bare, 2),
            "target": "≤ 1.3×",
        },
        {
            "benchmark": "motion 5 s 720p, style anime",
            "value": round(anime, 3),
            "unit": "s",
            "baseline": round(bare, 3),
            "ratio": round(anime / bare, 2),
            "target": "≤ 1.3×",
        },
        {
            "benchmark": "motion 5 s 720p vs x264 alone on the same frames",
            "value": round(motion, 3),
            "unit": "s",
            "baseline": round(floor, 3),
            "ratio": round(motion / floor, 2),
            "target": "informational",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
