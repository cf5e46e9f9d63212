"""Benchmark: a 5 s 720p lip-sync clip from SpeakingEngine vs. a bare PyAV encode of as
many frames, and the speech synthesiser's real-time factor.

Both clips run in the same process, interleaved, so the ratio holds on any machine. The
engine's time covers everything a job does: synthesise the speech, decode and fit the
image, find the face, animate it frame by frame, resample the audio, encode and mux
H.264 + AAC. The baseline encodes the same number of 720x720 frames with the same x264
preset/CRF (sliding windows over the same picture, handed to PyAV as rgb24, the way a
plain PyAV script does it) and no audio. The photo is scikit-image's astronaut (a dev
dependency), whose face the detector finds; at 720p with its own square aspect.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RUNS, medians
from bench.motion import CRF, FPS, PRESET
from kinema.testing import FakeContext

SIDE, SECONDS = 720, 5.0
FRAMES = round(SECONDS * FPS)
TEXT = "Hello and welcome. Today we look at the stars."
SPEAKER = "Chloe"
TTS_TEXT = (
    "Kinema speaks the words it is given in one of fifteen voices, and the face in the "
    "picture moves its lips in time with them. This paragraph measures how fast that is."
)


def _tts_factor() -> tuple[float, float]:
    """(synthesis seconds, audio seconds) for a paragraph, median of RUNS cold runs."""
    from kinema.media import speech

    times = []
    audio = 0.0
    for _ in range(RUNS):
        speech.synthesize.cache_clear()
        speech._rendered.cache_clear()
        start = time.perf_counter()
        audio = speech.synthesize(TTS_TEXT, SPEAKER).seconds
        times.append(time.perf_counter() - start)
    return statistics.median(times), audio


def run() -> list[dict[str, Any]]:
    import numpy as np
    import skimage.data
    from PIL import Image

    from kinema.engines.speaking import SpeakingEngine
    from kinema.media import speech
    from kinema.media.images import fit_image
    from kinema.render_request import LIP_SYNC_TTS, MediaRef, RenderRequest

    picture = np.ascontiguousarray(skimage.data.astronaut())
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    wide = fit_image(picture, SIDE + FRAMES, SIDE + FRAMES)

    def rgb_frames() -> Any:
        return (wide[i : i + SIDE, i : i + SIDE] for i in range(FRAMES))

    engine = SpeakingEngine()
    engine.load()
    request = RenderRequest(
        model="bench",
        capability=LIP_SYNC_TTS,
        image=MediaRef("image_url", "data:"),
        tts_text=TEXT,
        tts_speaker=SPEAKER,
        duration=SECONDS,
        short_side=SIDE,
        seed=7,
        generate_audio=True,
    )

    def lip_sync() -> None:
        # Cold speech every time: a job in a fresh worker does not find it cached.
        speech.synthesize.cache_clear()
        speech._rendered.cache_clear()
        engine.generate(request, ctx)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctx = FakeContext(work, {"image_url": jpeg}, output_name="speaking.mp4")
        runs = [lip_sync, lambda: _bare_encode_square(work / "bare.mp4", rgb_frames)]
        for warm_up in runs:  # untimed: model load, caches, x264's first init
            warm_up()
        engine_seconds, bare = medians(runs)
    synthesis, audio = _tts_factor()
    return [
        {
            "benchmark": "lip-sync 5 s 720p",
            "value": round(engine_seconds, 3),
            "unit": "s",
            "baseline": round(bare, 3),
            "ratio": round(engine_seconds / bare, 2),
            "target": "≤ 1.3×",
        },
        {
            "benchmark": "TTS real-time factor",
            "value": round(synthesis / audio, 4),
            "unit": "× real time",
            "baseline": f"{audio:.1f} s audio",
            "ratio": f"{audio / synthesis:.0f}× faster",
            "target": "informational",
        },
    ]


def _bare_encode_square(path: Path, frames: Any) -> None:
    """bench.motion's baseline (x264, same preset/CRF, rgb24 in), at SIDE x SIDE."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIDE, SIDE, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        stream.thread_type = "AUTO"
        for index, array in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


if __name__ == "__main__":
    for row in run():
        print(row)
