"""DubbingEngine (`pixverse/lip-sync`) on a talking clip made here by the talking-head
engine: the output is the same video (length, size, everything but the mouth), its sound
is the new speech, and the mouth measured by the face mesh in the output follows the new
speech, not the old; broken, unsupported or over-long inputs are InputErrors naming the
field. Also the input-video reader on MOV and WebM at other frame rates."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from kinema.engines.dubbing import DubbingEngine
from kinema.engines.talking_head import TalkingHeadEngine
from kinema.errors import EngineError, InputError
from kinema.media.faces import largest_face
from kinema.media.sniff import sniff_video
from kinema.media.video_input import inspect_video, video_frames
from kinema.render_request import SPEECH_LEAD_IN_SECONDS, VIDEO_DUBBING, MediaRef, RenderRequest
from kinema.testing import FakeContext
from tests.engine_context import encode_image
from tests.test_talking_head import (
    ASTRONAUT,
    grown,
    mouth_opening,
    rms_per_frame,
    speech,
    wav_bytes,
)
from tests.test_talking_head import request as talking_request

FPS, RATE, SIZE = 25, 48000, 480
OLD, NEW = speech(3.0, seed=5), speech(3.0, seed=11)  # what the clip says, what it will say
Frames = list[npt.NDArray[np.uint8]]


def dub_request(**overrides: Any) -> RenderRequest:
    """What `pixverse/lip-sync` with an audio_url renders to."""
    base = RenderRequest(
        model="pixverse/lip-sync",
        capability=VIDEO_DUBBING,
        video=MediaRef("video_url", "https://example.test/talking.mp4", "video"),
        max_video_seconds=30.0,
        audio=MediaRef("audio_url", "https://example.test/new.wav", "audio"),
        max_audio_seconds=30.0,
        short_side=1080,
        generate_audio=True,
    )
    return dataclasses.replace(base, **overrides)


def tts(text: str, speaker: str) -> dict[str, Any]:
    return {"audio": None, "tts_text": text, "tts_speaker": speaker,
            "tts_field": "lip_sync_tts_content"}  # fmt: skip


def decode(path: Path) -> tuple[Frames, npt.NDArray[np.float32]]:
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, sound.codec_context.name) == ("h264", "aac")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
        container.seek(0)
        audio = np.concatenate([f.to_ndarray()[0] for f in container.decode(sound)])
    return frames, audio


@pytest.fixture(scope="module")
def engine() -> DubbingEngine:
    engine = DubbingEngine()
    engine.load()
    return engine


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Frames]:
    """A 3 s 480x480 clip of the astronaut saying OLD (the talking-head engine)."""
    maker = TalkingHeadEngine()
    maker.load()
    inputs = {"image_url": encode_image(ASTRONAUT, "PNG"), "audio_url": wav_bytes(OLD)}
    ctx = FakeContext(tmp_path_factory.mktemp("source"), inputs)
    maker.generate(talking_request(short_side=SIZE), ctx)
    data = ctx.output_path.read_bytes()
    return data, decode(ctx.output_path)[0]


def dub(engine: DubbingEngine, tmp: Path, video: bytes, request: RenderRequest) -> FakeContext:
    ctx = FakeContext(tmp, {"video_url": video, "audio_url": wav_bytes(NEW)})
    engine.generate(request, ctx)
    return ctx


@pytest.fixture(scope="module")
def redubbed(
    engine: DubbingEngine, source: tuple[bytes, Frames], tmp_path_factory: pytest.TempPathFactory
) -> tuple[FakeContext, Frames, npt.NDArray[np.float32]]:
    ctx = dub(engine, tmp_path_factory.mktemp("dubbed"), source[0], dub_request())
    return ctx, *decode(ctx.output_path)


def openings(frames: Frames) -> npt.NDArray[np.float64]:
    face = largest_face(frames[0])
    assert face is not None
    return np.array([mouth_opening(frame, face) for frame in frames])


def test_the_same_video_with_the_new_sound(
    source: tuple[bytes, Frames], redubbed: tuple[FakeContext, Frames, Any]
) -> None:
    ctx, frames, audio = redubbed
    original = source[1]
    assert len(frames) == len(original) == 75 and frames[0].shape == (SIZE, SIZE, 3)
    assert len(ctx.reports) == 75 and ctx.reports[-1] == 1.0
    # The sound is the new speech (AAC's envelope matches), the old one is gone.
    heard = rms_per_frame(audio[: 3 * RATE], 75)
    assert np.corrcoef(heard, rms_per_frame(NEW, 75))[0, 1] > 0.95
    assert np.corrcoef(heard, rms_per_frame(OLD, 75))[0, 1] < 0.3
    # Away from the mouth, jaw and chin the frames are the source's (x264's noise apart).
    face = largest_face(original[0])
    assert face is not None
    x, y, w, h = face.box
    lower_face = grown((x, y + h // 2, w, h), 1.6, original[0].shape)
    for dubbed, before in zip(frames[::5], original[::5], strict=True):
        difference = np.abs(dubbed.astype(int) - before)
        difference[lower_face] = 0
        assert difference.mean() < 1.5


def test_the_mouth_follows_the_new_audio_not_the_old(
    source: tuple[bytes, Frames], redubbed: tuple[FakeContext, Frames, Any]
) -> None:
    _, frames, _ = redubbed
    seen = openings(frames)
    assert np.corrcoef(seen, rms_per_frame(NEW, len(frames)))[0, 1] >= 0.8
    assert np.corrcoef(seen, rms_per_frame(OLD, len(frames)))[0, 1] < 0.5
    # In the source, it was the other way round.
    before = openings(source[1])
    assert np.corrcoef(before, rms_per_frame(OLD, len(frames)))[0, 1] >= 0.8
    assert seen.max() - seen.min() > 0.03  # visibly, not just measurably


def test_the_mouth_follows_spoken_text_in_sync(
    engine: DubbingEngine, source: tuple[bytes, Frames], tmp_path: Path
) -> None:
    ctx = dub(engine, tmp_path, source[0], dub_request(**tts("Hello and welcome, my friend.",
                                                             "Chloe")))  # fmt: skip
    frames, audio = decode(ctx.output_path)
    assert len(frames) == 75
    lead = int((SPEECH_LEAD_IN_SECONDS - 0.05) * RATE)
    assert np.abs(audio[:lead]).max() < 0.02 and np.sqrt(np.mean(audio**2)) > 0.03
    envelope = rms_per_frame(audio[: 3 * RATE], 75)
    seen = openings(frames)
    assert np.corrcoef(seen, envelope)[0, 1] >= 0.8

    # Correlation with the mouth k frames late, and k frames early.
    late = [float(np.corrcoef(seen[k:], envelope[: 75 - k])[0, 1]) for k in range(4)]
    early = [float(np.corrcoef(seen[: 75 - k], envelope[k:])[0, 1]) for k in range(4)]
    offsets = dict(zip([*range(4), *range(0, -4, -1)], late + early, strict=True))
    assert abs(max(offsets, key=lambda k: offsets[k])) <= 1  # A/V offset within a frame


def test_speech_longer_than_the_video_is_refused(
    engine: DubbingEngine, source: tuple[bytes, Frames], tmp_path: Path
) -> None:
    words = "This sentence is far too long to be spoken in the three seconds of the clip."
    with pytest.raises(InputError) as exc:
        dub(engine, tmp_path, source[0], dub_request(**tts(words, "Mason")))
    assert exc.value.field_name == "lip_sync_tts_content" and "3.0 s video" in str(exc.value)
    ctx = FakeContext(tmp_path, {"video_url": source[0], "audio_url": wav_bytes(speech(5.0))})
    with pytest.raises(InputError) as exc:
        engine.generate(dub_request(), ctx)
    assert exc.value.field_name == "audio_url" and "longer than" in str(exc.value)
    with pytest.raises(InputError) as exc:
        dub(engine, tmp_path, source[0], dub_request(max_video_seconds=2.0))
    assert exc.value.field_name == "video_url" and "longer than 2 s" in str(exc.value)


def test_broken_and_unsupported_videos_name_the_field(
    engine: DubbingEngine, source: tuple[bytes, Frames], tmp_path: Path
) -> None:
    mp4 = source[0]
    flipped = mp4[:5000] + bytes(b ^ 0x5A for b in mp4[5000:])
    cases = {
        b"\x89PNG\r\n\x1a\n" + bytes(500): "not a supported video",
        b"\x00\x00\x00\x18ftypisom" + bytes(300): "could not be read",
        mp4[: len(mp4) // 2]: "truncated",
        flipped: "damaged",
    }
    for data, fragment in cases.items():
        with pytest.raises(InputError) as exc:
            dub(engine, tmp_path, data, dub_request())
        assert exc.value.field_name == "video_url", exc.value
        assert fragment in str(exc.value), (fragment, str(exc.value))
    assert not (tmp_path / "out.mp4").exists()


def write_clip(fmt: str, codec: str, fps: int, frames: int, size: int = 64) -> bytes:
    """A clip whose frame k is a flat grey of level 8 * k (so a frame says its index)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            picture = np.full((size, size, 3), (8 * k + 4) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "codec", "fps", "kind"),
    [("mov", "libx264", 30, "mov"), ("webm", "libvpx", 20, "webm"), ("mp4", "mpeg4", 25, "mp4")],
)
def test_other_containers_and_frame_rates_come_out_at_25_fps(
    fmt: str, codec: str, fps: int, kind: str
) -> None:
    data = write_clip(fmt, codec, fps, fps)  # one second
    assert sniff_video(data) == kind
    probe = inspect_video(data, "video_url", 30.0)
    assert abs(probe.seconds - 1.0) < 0.06 and (probe.width, probe.height) == (64, 64)
    out = list(video_frames(data, "video_url", 32, 32, 25, FPS))
    assert len(out) == 25 and out[0].shape == (32, 32, 3)
    shown = [round((float(frame.mean()) - 4) / 8) for frame in out]
    # Output frame i shows the source frame on screen at i / 25 s.
    assert shown == [int(i * fps / FPS + 1e-6) for i in range(25)], shown


def test_a_video_without_a_face_is_refused(engine: DubbingEngine, tmp_path: Path) -> None:
    clip = write_clip("mp4", "libx264", 25, 75, size=128)  # 3 s, as long as the speech
    with pytest.raises(EngineError) as exc:
        dub(engine, tmp_path, clip, dub_request())
    assert exc.value.name == "FaceNotFound" and "video_url" in str(exc.value)
    assert not (tmp_path / "out.mp4").exists()


def test_frames_are_streamed_never_the_whole_clip(
    engine: DubbingEngine, source: tuple[bytes, Frames], tmp_path: Path
) -> None:
    """Python-visible memory (NumPy's arrays included) peaks at a few frames' worth
    while the 75-frame clip is decoded, re-animated and encoded."""
    frame_bytes = SIZE * SIZE * 3
    tracemalloc.start()
    try:
        dub(engine, tmp_path, source[0], dub_request())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * frame_bytes, peak / frame_bytes  # the clip: 75
