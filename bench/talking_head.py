"""Benchmark: a 5 s talking-head clip (veed/fabric-1.0) at 720p and 1080p vs. encoding
the very same frames and audio with PyAV alone.

Both run in the same process, one after the other, so the ratio holds on any machine.
The engine's time covers everything a job does: decode the PNG and the WAV, fit, find
the face (detector pyramid + mesh), build the mouth track, warp every frame, encode
H.264 + AAC and mux. The baseline is a plain PyAV script handed the engine's own output
frames as rgb24 plus the same audio, with the same x264 preset/CRF/pix_fmt: the cost of
the clip without any of the animation. A second row per size compares against x264
alone on those frames already converted to yuv420p, the floor no way of producing this
clip can go under. The baseline's frames are rebuilt from the input and the animated
head region of each frame (kept from a render beforehand), so 1080p needs no gigabyte
of held frames; pasting that region costs well under a millisecond a frame.
"""

from __future__ import annotations

import io
import tempfile
import wave
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.common import medians
from kinema.testing import FakeContext

FPS, SECONDS, RATE = 25, 5.0, 48000
FRAMES = round(SECONDS * FPS)
PRESET, CRF = "veryfast", 23
SIZES = (720, 1080)


def _speech() -> Any:
    """5 s of speech-like sound: voiced syllables (a pitch's harmonics shaped by two
    formants) of varied loudness, separated by short gaps."""
    import numpy as np

    rng = np.random.default_rng(11)
    out = np.zeros(round(SECONDS * RATE), np.float32)
    t = 0.2
    while t < SECONDS - 0.4:
        length = rng.uniform(0.12, 0.3)
        times = np.arange(round(length * RATE)) / RATE
        pitch, f1, f2 = rng.uniform(110, 220), rng.uniform(300, 750), rng.uniform(900, 2300)
        k = np.arange(1, 40)[:, None]
        gain = np.exp(-(((k * pitch - f1) / 200) ** 2)) + 0.6 * np.exp(
            -(((k * pitch - f2) / 250) ** 2)
        )
        voice = ((gain + 0.02) * np.sin(2 * np.pi * k * pitch * times)).sum(0)
        start = round(t * RATE)
        out[start : start + times.size] = voice * np.sin(np.pi * times / length) ** 0.7
        t += length + rng.uniform(0.04, 0.2)
    return (out * (0.8 / np.abs(out).max())).astype(np.float32)


def _wav(samples: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def _bare_encode(
    path: Path, frames: Callable[[], Iterator[Any]], pix_fmt_in: str, size: tuple[int, int],
    audio: Any,
) -> None:  # fmt: skip
    import av
    import numpy as np

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        stream.thread_type = "AUTO"
        sound: Any = None
        if audio is not None:
            sound = container.add_stream("aac", rate=RATE)
            sound.layout, sound.bit_rate = "mono", 128_000
            for start in range(0, audio.size, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[None, start : start + 1024]), format="fltp",
                    layout="mono",
                )  # fmt: skip
                chunk.sample_rate, chunk.pts, chunk.time_base = RATE, start, Fraction(1, RATE)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
        for index, array in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(array, format=pix_fmt_in)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _rows(size: int, image: Any, audio: Any, work: Path) -> list[dict[str, Any]]:
    import cv2
    from PIL import Image

    from kinema.engines.talking_head import TalkingHeadEngine
    from kinema.media.face_anim import FaceAnimator, mouth_track_from_audio
    from kinema.media.faces import largest_face
    from kinema.media.images import fit_image, output_size
    from kinema.render_request import TALKING_HEAD, MediaRef, RenderRequest

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    inputs = {"image_url": buffer.getvalue(), "audio_url": _wav(audio)}
    ctx = FakeContext(work, inputs, output_name="talking_head.mp4")
    request = RenderRequest(
        model="veed/fabric-1.0",
        capability=TALKING_HEAD,
        image=MediaRef("image_url", "data:"),
        audio=MediaRef("audio_url", "data:", "audio"),
        max_audio_seconds=30.0,
        short_side=size,
        generate_audio=True,
        seed=7,
    )
    engine = TalkingHeadEngine()
    engine.load()
    width, height = output_size(size, None, (), image.shape[1], image.shape[0])
    fitted = fit_image(image, width, height)
    face = largest_face(fitted)
    assert face is not None, "the benchmark picture must show a face"
    animator = FaceAnimator(fitted, face, seed=7)
    roi = animator.roi
    heads = [frame[roi].copy() for frame in animator.frames(
        mouth_track_from_audio(audio, RATE, FRAMES, FPS)
    )]  # fmt: skip

    def rgb_frames() -> Iterator[Any]:
        for head in heads:
            frame = fitted.copy()
            frame[roi] = head
            yield frame

    yuv = [cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420) for frame in rgb_frames()]
    runs: list[Callable[[], None]] = [
        lambda: engine.generate(request, ctx),
        lambda: _bare_encode(work / "bare.mp4", rgb_frames, "rgb24", (width, height), audio),
        lambda: _bare_encode(work / "yuv.mp4", lambda: iter(yuv), "yuv420p", (width, height), None),
    ]
    for warm_up in runs:  # untimed: caches, thread pools, x264's first init
        warm_up()
    clip, bare, floor = medians(runs)
    name = f"talking_head 5 s {size}p"
    return [
        {
            "benchmark": name,
            "value": round(clip, 3),
            "unit": "s",
            "baseline": round(bare, 3),
            "ratio": round(clip / bare, 2),
            "target": "≤ 1.3×",
        },
        {
            "benchmark": f"{name} vs x264 alone on the same frames",
            "value": round(clip, 3),
            "unit": "s",
            "baseline": round(floor, 3),
            "ratio": round(clip / floor, 2),
            "target": "informational",
        },
    ]


def run() -> list[dict[str, Any]]:
    from skimage import data

    image = data.astronaut()
    audio = _speech()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            rows += _rows(size, image, audio, Path(tmp))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
