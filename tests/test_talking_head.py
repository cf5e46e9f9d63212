"""TalkingHeadEngine end to end, and the face finder and animator under it: a real photo
(skimage's astronaut) and synthetic speech in, MP4s out, checked with PyAV and by
measuring the mouth in the output with the same face mesh."""

from __future__ import annotations

import dataclasses
import io
import math
import wave
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from kinema.engines.talking_head import TalkingHeadEngine
from kinema.errors import Cancelled, EngineError
from kinema.media.face_anim import FaceAnimator, MouthTrack, mouth_track_from_audio
from kinema.media.faces import Face, find_faces, largest_face
from kinema.media.images import fit_image
from kinema.render_request import TALKING_HEAD, MediaRef, RenderRequest
from tests.engine_context import EngineTestContext, encode_image, picture, psnr

RATE, FPS = 48000, 25
Image = npt.NDArray[np.uint8]


def speech(seconds: float, seed: int = 5) -> npt.NDArray[np.float32]:
    """Speech-like audio: voiced syllables (harmonics of a pitch shaped by two formants)
    of varied loudness, with short gaps, a long pause and silent edges."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * RATE), np.float32)
    vowels = ((700, 1200), (300, 2300), (400, 800), (500, 1800))
    t = 0.3
    while t < seconds - 0.35:
        length = rng.uniform(0.12, 0.3)
        times = np.arange(round(length * RATE)) / RATE
        pitch = rng.uniform(110, 220)
        f1, f2 = vowels[rng.integers(len(vowels))]
        voice = np.zeros_like(times)
        for k in range(1, 40):
            gain = np.exp(-(((k * pitch - f1) / 200) ** 2)) + 0.6 * np.exp(
                -(((k * pitch - f2) / 250) ** 2)
            )
            voice += (gain + 0.02) * np.sin(2 * np.pi * k * pitch * times + rng.uniform(0, 6))
        envelope = np.sin(np.pi * times / length) ** 0.7 * rng.uniform(0.25, 1.0)
        start = round(t * RATE)
        out[start : start + times.size] += (voice * envelope).astype(np.float32)
        t += length + (0.45 if rng.random() < 0.15 else rng.uniform(0.04, 0.15))
    return (out * (0.8 / np.abs(out).max())).astype(np.float32)


def wav_bytes(samples: npt.NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def mp3_bytes(samples: npt.NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream: Any = container.add_stream("libmp3lame", rate=RATE)
        stream.layout = "mono"
        for start in range(0, samples.size, 1152):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1152], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def rms_per_frame(samples: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.float64]:
    hop = RATE // FPS
    padded = np.zeros(count * hop, np.float64)
    padded[: min(samples.size, padded.size)] = samples[: padded.size]
    return np.sqrt((padded.reshape(count, hop) ** 2).mean(1))


ASTRONAUT: Image = data.astronaut()
SPEECH = speech(3.0)


def two_faces() -> Image:
    small = cv2.resize(ASTRONAUT, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 768, 3), 200, np.uint8)
    canvas[:, :512], canvas[128:384, 512:] = ASTRONAUT, small
    return canvas


def gradient(width: int = 640, height: int = 480) -> Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [x * 255 / width, y * 255 / height, (x + y) * 255 / (width + height)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def request(**overrides: Any) -> RenderRequest:
    base = RenderRequest(
        model="veed/fabric-1.0",
        capability=TALKING_HEAD,
        image=MediaRef("image_url", "https://example.test/face.png"),
        audio=MediaRef("audio_url", "https://example.test/speech.mp3", "audio"),
        max_audio_seconds=30.0,
        short_side=480,
        generate_audio=True,
        seed=3,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
def engine() -> TalkingHeadEngine:
    engine = TalkingHeadEngine()
    engine.load()
    return engine


def render(engine: TalkingHeadEngine, tmp_path: Path, image: Image, audio: bytes) -> Path:
    ctx = EngineTestContext(tmp_path, {"image_url": encode_image(image, "PNG"), "audio_url": audio})
    engine.generate(request(), ctx)
    assert ctx.reports[-1] == 1.0 and ctx.reports == sorted(ctx.reports)
    return ctx.output_path


def frames_of(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def grown(box: tuple[int, int, int, int], factor: float, shape: tuple[int, ...]) -> Any:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, round(cx - w * factor / 2)), max(0, round(cy - h * factor / 2))
    x1, y1 = min(shape[1], round(cx + w * factor / 2)), min(shape[0], round(cy + h * factor / 2))
    return slice(y0, y1), slice(x0, x1)


def mouth_opening(frame: Image, near: Face) -> float:
    """Inner-lip gap (points 13-14) over face height (10-152), measured by the mesh on
    a crop around where the face was (detection on the crop is much cheaper)."""
    rows, cols = grown(near.box, 2.2, frame.shape)
    faces = find_faces(np.ascontiguousarray(frame[rows, cols]))
    assert faces, "the face was lost in an output frame"
    points = faces[0].landmarks
    return float(np.linalg.norm(points[14] - points[13]) / np.linalg.norm(points[152] - points[10]))


# ------------------------------------------------------------------------------- faces
def test_find_faces_on_a_photo_at_several_sizes() -> None:
    faces = find_faces(ASTRONAUT)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert face.landmarks.shape == (468, 2) and face.landmarks.dtype == np.float32
    assert face.score > 0.9 and 70 < w < 130 and 80 < h < 140
    inside = (face.landmarks >= (x - 1, y - 1)) & (face.landmarks <= (x + w + 1, y + h + 1))
    assert inside.all()
    nose, chin, brow = face.landmarks[1], face.landmarks[152], face.landmarks[10]
    assert brow[1] < nose[1] < chin[1] and 190 < nose[0] < 250  # upright, where she is
    for size in (200, 1024):
        scaled = cv2.resize(ASTRONAUT, (size, size), interpolation=cv2.INTER_AREA)
        found = find_faces(scaled)
        assert len(found) == 1
        assert math.isclose(found[0].box[2], w * size / 512, rel_tol=0.15)


def test_find_faces_sees_no_face_in_synthetic_pictures() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    for image in (gradient(), noise, picture(640, 360, seed=2)):
        assert find_faces(image) == []
        assert largest_face(image) is None


def test_find_faces_orders_largest_first() -> None:
    faces = find_faces(two_faces())
    assert len(faces) == 2
    assert faces[0].box[0] < 512 <= faces[1].box[0]
    assert faces[0].box[2] > 1.7 * faces[1].box[2]


# ------------------------------------------------------------------------- mouth track
def test_mouth_track_follows_loudness_and_rests_in_silence() -> None:
    count = 75
    track = mouth_track_from_audio(SPEECH, RATE, count)
    assert len(track.open) == len(track.width) == len(track.round) == count
    assert track.open.min() >= 0 and 0.9 < track.open.max() <= 1
    assert track.width.min() >= -1 and track.width.max() <= 1 and track.round.min() >= 0
    loudness = rms_per_frame(SPEECH, count)
    assert np.corrcoef(track.open, loudness)[0, 1] > 0.85
    quiet = loudness < 1e-4
    pauses = quiet[1:-1] & quiet[:-2] & quiet[2:]  # one frame from any sound
    assert pauses.sum() > 10 and (track.open[1:-1][pauses] == 0).all()  # shut in pauses
    silent = mouth_track_from_audio(np.zeros(RATE, np.float32), RATE, 25)
    assert not silent.open.any() and not silent.width.any() and not silent.round.any()


def test_animator_holds_still_with_a_closed_mouth_and_stays_in_the_face() -> None:
    face = largest_face(ASTRONAUT)
    assert face is not None
    shut = np.zeros(50, np.float32)
    # Frames come from a ring of reused buffers: a consumer that keeps them copies them.
    animator = FaceAnimator(ASTRONAUT, face, seed=1)
    frames = [f.copy() for f in animator.frames(MouthTrack(shut, shut, shut))]
    assert np.array_equal(frames[0], ASTRONAUT)  # head at rest, mouth closed
    opened = np.full(50, 1.0, np.float32)
    animator = FaceAnimator(ASTRONAUT, face, seed=1)
    wide = [f.copy() for f in animator.frames(MouthTrack(opened, shut, shut))]
    far = np.ones(ASTRONAUT.shape[:2], bool)
    far[grown(face.box, 3.0, ASTRONAUT.shape)] = False
    for frame in frames + wide:
        assert np.array_equal(frame[far], ASTRONAUT[far])  # the background never moves
    mouth = grown(
        (face.box[0], face.box[1] + face.box[3] // 2, face.box[2], face.box[3] // 2),
        1.0,
        ASTRONAUT.shape,
    )
    assert np.abs(wide[0][mouth].astype(int) - ASTRONAUT[mouth]).mean() > 8


# ------------------------------------------------------------------------------ engine
def test_talking_head_clip_follows_the_audio(engine: TalkingHeadEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, ASTRONAUT, mp3_bytes(SPEECH))
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (480, 480)
        assert sound.codec_context.name == "aac"
        duration = float(video.duration * video.time_base)
    assert abs(duration - 3.0) <= 1 / FPS
    frames = frames_of(path)
    assert len(frames) == 75
    fitted = fit_image(ASTRONAUT, 480, 480)
    assert psnr(frames[0], fitted) > 30
    face = largest_face(fitted)
    assert face is not None
    openings = np.array([mouth_opening(frame, face) for frame in frames])
    loudness = rms_per_frame(SPEECH, len(frames))
    assert np.corrcoef(openings, loudness)[0, 1] > 0.6
    assert openings.max() - openings.min() > 0.02  # visibly, not just measurably
    # Outside the face only the head's slight motion shows, fading out within a face
    # width; further out the frames are the first one (which is the input) unchanged.
    # Compared with frame 0 rather than the input, so x264's noise cancels out.
    outside = np.ones((480, 480), bool)
    outside[grown(face.box, 1.0, fitted.shape)] = False
    far = np.ones((480, 480), bool)
    far[grown(face.box, 2.0, fitted.shape)] = False
    for frame in frames[::5]:
        difference = np.abs(frame.astype(int) - frames[0])
        assert difference[outside].mean() < 1.5 and difference[far].mean() < 0.3


def test_silent_audio_gives_a_still_mouth(engine: TalkingHeadEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, ASTRONAUT, wav_bytes(np.zeros(RATE, np.float32)))
    frames = frames_of(path)
    assert len(frames) == 25
    face = largest_face(fit_image(ASTRONAUT, 480, 480))
    assert face is not None
    rest = mouth_opening(fit_image(ASTRONAUT, 480, 480), face)
    for frame in frames[::4]:
        assert abs(mouth_opening(frame, face) - rest) < 0.01


def test_the_largest_of_two_faces_speaks(engine: TalkingHeadEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, two_faces(), wav_bytes(SPEECH[: RATE * 3 // 2]))
    frames = frames_of(path)
    fitted = fit_image(two_faces(), 720, 480)
    big, small = find_faces(fitted)

    def change(box: tuple[int, int, int, int]) -> float:
        area = grown(box, 1.0, fitted.shape)
        return max(float(np.abs(f[area].astype(int) - frames[0][area]).mean()) for f in frames)

    assert change(big.box) > 5 and change(small.box) < 0.5  # x264 keeps a still face still


def test_no_face_is_an_error(engine: TalkingHeadEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError) as caught:
        render(engine, tmp_path, gradient(), wav_bytes(SPEECH[:RATE]))
    assert caught.value.message == "Could not detect a face in image_url"
    assert caught.value.name == "FaceNotFound"
    assert not (tmp_path / "out.mp4").exists()


def test_cancellation_stops_the_job(engine: TalkingHeadEngine, tmp_path: Path) -> None:
    inputs = {"image_url": encode_image(ASTRONAUT, "PNG"), "audio_url": wav_bytes(SPEECH)}
    ctx = EngineTestContext(tmp_path, inputs, cancel_after=5)
    with pytest.raises(Cancelled):
        engine.generate(request(), ctx)
    assert len(ctx.reports) == 5 and not ctx.output_path.exists()
