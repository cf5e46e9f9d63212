"""MorphEngine end to end on real photos (scikit-image's samples): MP4s decoded with PyAV."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from kinema.engines.morph import MorphEngine, estimate_flows
from kinema.errors import Cancelled, EngineError
from kinema.media.images import fit_image
from kinema.render_request import FIRST_LAST_FRAME, MediaRef, RenderRequest
from tests.engine_context import EngineTestContext, data_uri, encode_image, psnr

Image = npt.NDArray[np.uint8]
SIDE = 320  # square output: every input below is square or centre-cropped to square
ASTRONAUT = data.astronaut()  # 512x512


def window(x: float, y: float, size: float) -> Image:
    """The astronaut seen through a square window at (x, y), as a 448 px image: moving and
    shrinking the window is a camera that pans and zooms in."""
    matrix = np.array([[448 / size, 0, -x * 448 / size], [0, 448 / size, -y * 448 / size]])
    return cv2.warpAffine(ASTRONAUT, matrix, (448, 448), flags=cv2.INTER_LINEAR)


FIRST = window(0, 0, 448)
SHIFTED = window(48, 24, 416)  # 48/24 px to the right/down and zoomed in by 8 %
HALFWAY = window(24, 12, 432)
COFFEE = data.coffee()  # 600x400, nothing in common with the astronaut


@pytest.fixture(scope="module")
def engine() -> MorphEngine:
    engine = MorphEngine()
    engine.load()
    return engine


def render(engine: MorphEngine, tmp_path: Path, first: Image, last: Image, **extra: Any) -> Path:
    ctx = EngineTestContext(tmp_path, output_name=extra.pop("name", "out.mp4"))
    request = RenderRequest(
        model="test",
        capability=FIRST_LAST_FRAME,
        image=MediaRef("image_url", data_uri(encode_image(first, "PNG"), "image/png")),
        last_image=MediaRef("last_image_url", data_uri(encode_image(last, "PNG"), "image/png")),
        short_side=SIDE,
        duration=extra.pop("duration", 1.0),
        **extra,
    )
    engine.generate(request, ctx)
    assert ctx.reports and ctx.reports[-1] == 1.0
    return ctx.output_path


def frames_of(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def fitted(image: Image) -> Image:
    return fit_image(image, SIDE, SIDE)


def test_ends_on_both_images_and_lasts_the_duration(engine: MorphEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, FIRST, SHIFTED, duration=2.0)
    frames = frames_of(path)
    assert len(frames) == 50
    assert frames[0].shape == (SIDE, SIDE, 3)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert math.isclose(float(video.duration * video.time_base), 2.0, abs_tol=0.04)
        assert not container.streams.audio
    assert psnr(frames[0], fitted(FIRST)) > 30
    assert psnr(frames[-1], fitted(SHIFTED)) > 30
    # The clip moves smoothly: no frame jumps much further than its neighbours do.
    steps = [np.mean(np.abs(a.astype(int) - b)) for a, b in itertools.pairwise(frames)]
    assert max(steps) < 4 * np.median(steps) + 1


def test_moving_camera_is_followed_not_faded(engine: MorphEngine, tmp_path: Path) -> None:
    frames = frames_of(render(engine, tmp_path, FIRST, SHIFTED))
    assert len(frames) == 25
    middle, halfway = frames[12], fitted(HALFWAY)  # frame 12 of 25 is t = 0.5
    fade = cv2.addWeighted(fitted(FIRST), 0.5, fitted(SHIFTED), 0.5, 0.0)
    # Away from the edge strips, where the window brought in new content.
    inner = (slice(40, -40), slice(40, -40))
    morph_psnr, fade_psnr = psnr(middle[inner], halfway[inner]), psnr(fade[inner], halfway[inner])
    assert morph_psnr > fade_psnr + 3, (morph_psnr, fade_psnr)
    assert morph_psnr > 24


def test_unrelated_images_cross_fade_cleanly(engine: MorphEngine, tmp_path: Path) -> None:
    frames = frames_of(render(engine, tmp_path, ASTRONAUT, COFFEE))
    first, last = fitted(ASTRONAUT), fitted(COFFEE)
    assert psnr(frames[0], first) > 30
    assert psnr(frames[-1], last) > 30
    assert psnr(frames[12], cv2.addWeighted(first, 0.5, last, 0.5, 0.0)) > 25
    # Eased: barely anything of the coffee two frames in, then the blend takes over.
    for index in (2, 6):
        t = index / 24
        w = t * t * (3 - 2 * t)  # smoothstep
        expected = np.rint(first * (1 - w) + last * w).astype(np.uint8)
        assert psnr(frames[index], expected) > 28


def test_flow_is_trusted_only_between_related_images() -> None:
    flows = estimate_flows(fitted(FIRST), fitted(SHIFTED))
    assert flows is not None
    # Output pixel p of FIRST shows source point p·s (s = 448/320); SHIFTED shows that
    # point at (p·s - window corner)·448/416 / s. Mid-image, the flow is that move.
    scale, zoom = 448 / SIDE, 448 / 416
    centre = np.array([159.5, 159.5])
    corner = np.array([48, 24])
    forward, backward = (flow[120:200, 120:200].reshape(-1, 2).mean(axis=0) for flow in flows)
    expected = (centre * scale - corner) * zoom / scale - centre
    assert np.allclose(forward, expected, atol=1.0), (forward, expected)
    expected = (centre * scale / zoom + corner) / scale - centre  # and back again
    assert np.allclose(backward, expected, atol=1.0), (backward, expected)
    chelsea = data.chelsea()
    for first, last in ((ASTRONAUT, COFFEE), (ASTRONAUT, chelsea), (chelsea, COFFEE)):
        assert estimate_flows(fitted(first), fitted(last)) is None


def test_last_image_is_fitted_to_the_first_ones_shape(engine: MorphEngine, tmp_path: Path) -> None:
    chelsea = data.chelsea()  # 451x300, landscape: centre-cropped to the square
    frames = frames_of(render(engine, tmp_path, ASTRONAUT, chelsea, duration=0.4))
    assert len(frames) == 10 and frames[-1].shape == (SIDE, SIDE, 3)
    assert psnr(frames[-1], fitted(chelsea)) > 30


def test_audio_is_quiet_room_tone_when_asked(engine: MorphEngine, tmp_path: Path) -> None:
    path = render(engine, tmp_path, FIRST, SHIFTED, generate_audio=True, seed=3, name="a.mp4")
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert math.isclose(float(audio.duration * audio.time_base), 1.0, abs_tol=0.04)
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio)])
    level = 20 * np.log10(np.sqrt(np.mean(samples**2)))
    assert -56 < level < -44, level  # room tone: audible in headphones, never more
    # The same request gives the same track. (Not the same bytes: x264 as write_mp4 sets
    # it up does not promise identical output from one run to the next.)
    again = render(engine, tmp_path, FIRST, SHIFTED, generate_audio=True, seed=3, name="b.mp4")
    with av.open(str(again)) as container:
        repeat = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.array_equal(repeat, samples)


def test_cancellation_stops_the_job(engine: MorphEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path, cancel_after=5)
    request = RenderRequest(
        model="test",
        capability=FIRST_LAST_FRAME,
        image=MediaRef("image_url", data_uri(encode_image(FIRST, "PNG"), "image/png")),
        last_image=MediaRef("last_image_url", data_uri(encode_image(SHIFTED, "PNG"), "image/png")),
        short_side=SIDE,
        duration=4.0,
    )
    with pytest.raises(Cancelled):
        engine.generate(request, ctx)
    assert len(ctx.reports) == 5
    assert not ctx.output_path.exists()


def test_needs_both_images(engine: MorphEngine, tmp_path: Path) -> None:
    request = RenderRequest(
        model="test",
        capability=FIRST_LAST_FRAME,
        image=MediaRef("image_url", data_uri(encode_image(FIRST, "PNG"), "image/png")),
    )
    with pytest.raises(EngineError):
        engine.generate(request, EngineTestContext(tmp_path))
    assert MorphEngine.capabilities == frozenset({FIRST_LAST_FRAME})


@pytest.mark.parametrize(("duration", "count"), [(0.04, 1), (0.08, 2), (0.12, 3)])
def test_very_short_clips(engine: MorphEngine, tmp_path: Path, duration: float, count: int) -> None:
    frames = frames_of(render(engine, tmp_path, FIRST, SHIFTED, duration=duration))
    assert len(frames) == count
    assert psnr(frames[0], fitted(FIRST)) > 30
    if count > 1:
        assert psnr(frames[-1], fitted(SHIFTED)) > 30
