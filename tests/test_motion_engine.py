"""MotionEngine end to end: real images in, real MP4s out, checked with PyAV and OpenCV."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from kinema.engines import engine_class
from kinema.engines.motion import (
    GENTLE_MOVES,
    MOVES,
    PAN_LEFT,
    PAN_RIGHT,
    ROLL,
    STATIC,
    TILT_DOWN,
    TILT_UP,
    ZOOM_IN,
    ZOOM_OUT,
    MotionEngine,
    affine,
    camera,
    choose_move,
)
from kinema.errors import Cancelled, EngineError, InputError
from kinema.media.ambience import ROOM_TONE_DBFS, room_tone
from kinema.media.images import decode_image, fit_image
from kinema.render_request import IMAGE_TO_VIDEO, ImageRules, MediaRef, RenderRequest
from kinema.specs.minimax import VIDEO01_IMAGE_RULES
from tests.engine_context import (
    EngineTestContext,
    data_uri,
    encode_image,
    luma_psnr,
    picture,
    psnr,
)

SOURCE = encode_image(picture(960, 540, seed=11), "JPEG", quality=92)


@pytest.fixture(scope="module")
def engine() -> MotionEngine:
    engine = MotionEngine()
    engine.load()
    return engine


def request(**overrides: Any) -> RenderRequest:
    base = RenderRequest(
        model="test",
        capability=IMAGE_TO_VIDEO,
        image=MediaRef("image_url", data_uri(SOURCE, "image/jpeg")),
        short_side=360,
        aspect="16:9",
        duration=1.0,
        seed=1,
    )
    return dataclasses.replace(base, **overrides)


def render(engine: MotionEngine, tmp_path: Path, name: str, **overrides: Any) -> Path:
    ctx = EngineTestContext(tmp_path, output_name=name)
    engine.generate(request(**overrides), ctx)
    return ctx.output_path


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def dbfs(samples: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))))


def fitted(width: int, height: int) -> np.ndarray:
    rgb = decode_image(SOURCE, "image_url", ImageRules(), 50_000_000, 20 * 1024 * 1024)
    return fit_image(rgb, width, height)


# ---------------------------------------------------------------------- choosing the move
@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("Slow ZOOM IN on the lighthouse", ZOOM_IN),
        ("the camera pushes in", ZOOM_IN),
        ("dolly in toward the door", ZOOM_IN),
        ("push", ZOOM_IN),
        ("zoom out to reveal the city", ZOOM_OUT),
        ("camera pulls back", ZOOM_OUT),
        ("pull out slowly", ZOOM_OUT),
        ("dolly out", ZOOM_OUT),
        ("pan left across the hills", PAN_LEFT),
        ("panning to the right", PAN_RIGHT),
        ("a slow pan over the bay", PAN_RIGHT),
        ("pans left", PAN_LEFT),
        ("panned right", PAN_RIGHT),
        ("tilt up to the sky", TILT_UP),
        ("tilting down", TILT_DOWN),
        ("orbit around the statue", ROLL),
        ("the frame rotates", ROLL),
        ("static shot of a cafe", STATIC),
        ("tripod, no camera movement", STATIC),
        ("pan left, then zoom in", PAN_LEFT),  # the earliest move word wins
    ],
)
def test_prompt_words_pick_the_move(prompt: str, kind: str) -> None:
    assert choose_move(prompt, None, 3).kind == kind


def test_negative_prompt_forbids_moves() -> None:
    assert choose_move("zoom in", "zoom", 1).kind != ZOOM_IN
    assert choose_move("zoom in then pan left", "zooming", 1).kind == PAN_LEFT
    assert choose_move("zoom in", "zoom out", 1).kind == ZOOM_IN  # only zoom out forbidden
    assert choose_move("pan left", "pan right", 1).kind == PAN_LEFT
    for seed in range(30):
        assert choose_move("a quiet harbour", "zoom, pan, tilt, roll", seed).kind == STATIC
        assert choose_move("zoom in", "camera movement", seed).kind == STATIC
        assert choose_move("a harbour", "pan", seed).kind not in (PAN_LEFT, PAN_RIGHT)


def test_no_move_word_draws_a_gentle_move_from_the_seed() -> None:
    kinds = {choose_move("a red fox in snow", None, seed).kind for seed in range(60)}
    assert kinds == set(GENTLE_MOVES)
    assert choose_move("a fox", None, 5) == choose_move("a fox", None, 5)
    assert choose_move("a fox", None, None) == choose_move("a fox", None, None)


def test_moves_start_at_identity_and_never_leave_the_image() -> None:
    width, height = 640, 360
    # The output's outer pixel edges, mapped back into the source, must stay inside it.
    right, bottom = width - 0.5, height - 0.5
    corners = np.array([[-0.5, -0.5, 1], [right, -0.5, 1], [-0.5, bottom, 1], [right, bottom, 1]]).T
    prompts = {ZOOM_IN: "zoom in", PAN_LEFT: "pan left", PAN_RIGHT: "pan right"}
    prompts |= {TILT_UP: "tilt up", TILT_DOWN: "tilt down", ROLL: "roll", ZOOM_OUT: "zoom out"}
    assert set(prompts) == set(MOVES)
    for kind, prompt in prompts.items():
        for seed in range(6):
            move = choose_move(prompt, None, seed)
            assert move.kind == kind
            assert camera(move, 0.0, width, height) == (1.0, 0.0, 0.0, 0.0)
            if kind == ZOOM_OUT:
                continue  # shows the mirrored, blurred margin by design
            for t in np.linspace(0, 1, 51):
                forward = affine(*camera(move, float(t), width, height), width, height)
                source = (np.linalg.inv(np.vstack([forward, [0, 0, 1]])) @ corners)[:2]
                assert source[0].min() >= -0.5 - 1e-6 and source[0].max() <= right + 1e-6
                assert source[1].min() >= -0.5 - 1e-6 and source[1].max() <= bottom + 1e-6


# ------------------------------------------------------------------------------ rendering
def test_five_second_clip_at_360p(engine: MotionEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path)
    engine.generate(request(duration=None, prompt="slow zoom in"), ctx)  # default 5 s
    with av.open(str(ctx.output_path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.codec_context.width, video.codec_context.height) == (640, 360)
        assert float(video.average_rate or 0) == 25
        assert not container.streams.audio
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video)]
    assert len(frames) == 125
    # Frame 0 is the fitted input. RGB PSNR is capped near 37.6 dB by 4:2:0 chroma on
    # the test picture's saturated edges even without any compression; brightness is not.
    first = fitted(640, 360)
    assert psnr(frames[0], first) > 34
    assert luma_psnr(frames[0], first) > 40
    assert ctx.reports[-1] == 1.0 and ctx.reports == sorted(ctx.reports)
    assert len(ctx.reports) == 125
    # Zooming in: the last frame is the centre of the first, magnified.
    assert psnr(frames[-1], frames[0]) < 25


def test_static_prompt_holds_the_first_frame(engine: MotionEngine, tmp_path: Path) -> None:
    frames = frames_of(render(engine, tmp_path, "static.mp4", prompt="static, tripod shot"))
    assert len(frames) == 25
    assert min(psnr(frame, frames[0]) for frame in frames) > 40


def test_pans_and_tilts_move_the_picture_the_right_way(
    engine: MotionEngine, tmp_path: Path
) -> None:
    def shift(prompt: str) -> tuple[float, float]:
        frames = frames_of(render(engine, tmp_path, "shift.mp4", prompt=prompt, duration=2.0))
        # After 40 % of the clip the zoom is done, so frame to frame it is a translation.
        a, b = (cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY).astype(np.float32) for i in (25, 45))
        (dx, dy), _ = cv2.phaseCorrelate(a, b)
        return dx, dy

    dx, dy = shift("pan left")
    assert dx > 2 and abs(dy) < 1  # the camera turns left, so the picture slides right
    dx, dy = shift("pan right")
    assert dx < -2 and abs(dy) < 1
    dx, dy = shift("tilt up")
    assert dy > 1 and abs(dx) < 1


def test_different_moves_give_different_videos(engine: MotionEngine, tmp_path: Path) -> None:
    zoom = frames_of(render(engine, tmp_path, "zoom.mp4", prompt="zoom in"))
    pan = frames_of(render(engine, tmp_path, "pan.mp4", prompt="pan left"))
    assert psnr(zoom[0], pan[0]) > 40  # both start on the input image
    assert psnr(zoom[-1], pan[-1]) < 25


def test_same_request_gives_the_same_bytes(engine: MotionEngine, tmp_path: Path) -> None:
    first = render(engine, tmp_path, "a.mp4", prompt="a lighthouse", seed=42).read_bytes()
    second = render(engine, tmp_path, "b.mp4", prompt="a lighthouse", seed=42).read_bytes()
    assert first == second
    unseeded = [
        render(engine, tmp_path, f"{n}.mp4", prompt="a lighthouse", seed=None).read_bytes()
        for n in "cd"
    ]
    assert unseeded[0] == unseeded[1]


def test_cancellation_stops_the_job(engine: MotionEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path, cancel_after=10)
    with pytest.raises(Cancelled):
        engine.generate(request(duration=4.0), ctx)
    assert len(ctx.reports) == 10
    assert not ctx.output_path.exists()


def test_generate_audio_adds_quiet_room_tone(engine: MotionEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, "audio.mp4", generate_audio=True, duration=2.0)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert math.isclose(float(audio.duration * audio.time_base), 2.0, abs_tol=0.04)
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio)])
    # Room tone, not digital silence; quiet (about -50 dBFS) once the fade-in is over.
    middle = samples[len(samples) // 3 : 2 * len(samples) // 3]
    assert -60 < dbfs(middle) < -40
    assert dbfs(samples[:480]) < dbfs(middle) - 10  # faded in: the first 10 ms
    assert np.abs(samples).max() < 0.05
    silent = render(engine, tmp_path, "silent.mp4", duration=1.0)
    with av.open(str(silent)) as container:
        assert not container.streams.audio


def test_room_tone_is_seeded_pinkish_noise_at_the_level_asked() -> None:
    rate = 48000
    tone = room_tone(3 * rate, rate, seed=5)
    assert tone.dtype == np.float32 and tone.shape == (3 * rate,)
    assert np.array_equal(tone, room_tone(3 * rate, rate, seed=5))
    assert not np.array_equal(tone, room_tone(3 * rate, rate, seed=6))
    assert math.isclose(dbfs(tone[rate : 2 * rate]), ROOM_TONE_DBFS, abs_tol=1.5)
    assert tone[0] == 0 and tone[-1] == 0  # raised-cosine fades: no click
    assert abs(float(tone.mean())) < 1e-4  # no DC offset
    # Rumble-heavy like a real room: far more energy below 500 Hz than above 4 kHz.
    power = np.abs(np.fft.rfft(tone)) ** 2
    freqs = np.fft.rfftfreq(len(tone), 1 / rate)
    assert power[(freqs > 40) & (freqs < 500)].sum() > 10 * power[freqs > 4000].sum()
    assert room_tone(0, rate, 1).shape == (0,) and room_tone(3, rate, 1).shape == (3,)


def test_portrait_720p_snaps_to_the_nearest_choice(engine: MotionEngine, tmp_path: Path) -> None:
    portrait = encode_image(picture(540, 960, seed=4), "PNG")
    ctx = EngineTestContext(tmp_path, {"image_url": portrait})
    engine.generate(
        request(short_side=720, aspect=None, aspect_choices=("16:9", "9:16"), duration=2.0),
        ctx,
    )
    frames = frames_of(ctx.output_path)
    assert len(frames) == 50 and frames[0].shape == (1280, 720, 3)


def test_input_problems_are_reported(engine: MotionEngine, tmp_path: Path) -> None:
    webp = encode_image(picture(640, 360), "WEBP")
    ctx = EngineTestContext(tmp_path, {"image_url": webp})
    with pytest.raises(InputError, match="expected a PNG or JPEG image, got WebP"):
        engine.generate(request(image_rules=VIDEO01_IMAGE_RULES), ctx)
    unreachable = MediaRef("image_url", "https://example.test/a.png")
    with pytest.raises(InputError, match="no bytes"):
        engine.generate(request(image=unreachable), EngineTestContext(tmp_path))
    with pytest.raises(EngineError):
        engine.generate(request(image=None), ctx)
    assert not ctx.output_path.exists()


def test_registered_with_its_capability() -> None:
    assert engine_class("motion") is MotionEngine
    assert MotionEngine.capabilities == frozenset({IMAGE_TO_VIDEO})
