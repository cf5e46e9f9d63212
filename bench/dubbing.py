"""Benchmark: dubbing (`pixverse/lip-sync`) a 5 s 720p talking clip with new speech vs. a
bare PyAV transcode of the same clip (decode every frame to RGB, encode it again with the
same x264 preset/CRF, no audio), in the same process, interleaved.

The engine's time covers what a job does after the fetch: check the video from its
packets, decode the new audio, build the mouth track, then per frame decode, track the
face (one mesh run), close and re-open the mouth, and encode H.264 + AAC. The clip is made
first by the talking-head engine (scikit-image's astronaut saying a synthetic sentence),
so the face moves and speaks as in a real video.
"""

from __future__ import annotations

import io
import tempfile
import wave
from pathlib import Path
from typing import Any

from bench.common import medians
from bench.motion import CRF, FPS, PRESET
from kinema.testing import FakeContext

SIDE, SECONDS = 720, 5.0
OLD = "The weather today is mild, with a light breeze from the west."
NEW = "Hello and welcome. Today we look at the stars, one by one."


def _wav(text: str, speaker: str, seconds: float = 0.0) -> bytes:
    """`text` spoken, as WAV, padded with silence to `seconds` when shorter."""
    import numpy as np

    from kinema.media.speech import synthesize

    speech = synthesize(text, speaker)
    samples = np.zeros(max(speech.samples.size, round(seconds * speech.sample_rate)))
    samples[: speech.samples.size] = speech.samples
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(speech.sample_rate)
        handle.writeframes(pcm.tobytes())
    return out.getvalue()


def _talking_clip(work: Path) -> bytes:
    """A 720x720 clip of the astronaut saying OLD (padded to SECONDS with silence)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from kinema.engines.talking_head import TalkingHeadEngine
    from kinema.render_request import TALKING_HEAD, MediaRef, RenderRequest

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(skimage.data.astronaut())).save(buffer, "PNG")
    speech = _wav(OLD, "Jack", SECONDS)
    engine = TalkingHeadEngine()
    engine.load()
    ctx = FakeContext(
        work, {"image_url": buffer.getvalue(), "audio_url": speech}, output_name="source.mp4"
    )
    request = RenderRequest(
        model="bench", capability=TALKING_HEAD, image=MediaRef("image_url", "data:"),
        audio=MediaRef("audio_url", "data:", "audio"), max_audio_seconds=30.0,
        short_side=SIDE, generate_audio=True, seed=3,
    )  # fmt: skip
    engine.generate(request, ctx)
    return ctx.output_path.read_bytes()


def _bare_transcode(source: bytes, path: Path) -> None:
    import av

    with av.open(io.BytesIO(source)) as reader, av.open(str(path), "w", format="mp4") as writer:
        stream = writer.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        stream.thread_type = "AUTO"
        for index, decoded in enumerate(reader.decode(video=0)):
            frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="rgb24"), format="rgb24")
            frame.pts = index
            writer.mux(stream.encode(frame))
        writer.mux(stream.encode(None))


def run() -> list[dict[str, Any]]:
    from kinema.engines.dubbing import DubbingEngine
    from kinema.render_request import VIDEO_DUBBING, MediaRef, RenderRequest

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = _talking_clip(work)
        engine = DubbingEngine()
        engine.load()
        ctx = FakeContext(
            work, {"video_url": source, "audio_url": _wav(NEW, "Chloe")}, output_name="dub.mp4"
        )
        request = RenderRequest(
            model="bench", capability=VIDEO_DUBBING,
            video=MediaRef("video_url", "data:", "video"), max_video_seconds=30.0,
            audio=MediaRef("audio_url", "data:", "audio"), max_audio_seconds=30.0,
            short_side=1080, generate_audio=True, seed=7,
        )  # fmt: skip
        runs = [
            lambda: engine.generate(request, ctx),
            lambda: _bare_transcode(source, work / "bare.mp4"),
        ]
        for warm_up in runs:  # untimed: model load, caches, x264's first init
            warm_up()
        engine_seconds, bare = medians(runs)
    return [
        {
            "benchmark": "dubbing 5 s 720p (lip-sync)",
            "value": round(engine_seconds, 3),
            "unit": "s",
            "baseline": round(bare, 3),
            "ratio": round(engine_seconds / bare, 2),
            "target": "≤ 1.6×",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
