"""kinema.media.styles on a real photo, and styled clips from the motion engine.

The photo is scikit-image's astronaut (512x512): faces, text, flat and busy areas. What
is checked is what a user would notice: every style looks different from the photo and
from the others, the picture stays recognisable, the same request gives the same pixels,
and a styled clip moves as smoothly as an unstyled one (no flicker).
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from pathlib import Path
from typing import Any, get_args

import av
import cv2
import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import structural_similarity

from kinema.engines.motion import MotionEngine
from kinema.errors import EngineError
from kinema.media.framing import frame_image
from kinema.media.images import decode_image
from kinema.media.styles import STYLES, stylize
from kinema.render_request import IMAGE_TO_VIDEO, ImageRules, MediaRef, RenderRequest
from kinema.specs.pixverse import Style
from tests.engine_context import EngineTestContext, data_uri, encode_image, luma_psnr

PHOTO = skdata.astronaut()
JPEG = encode_image(PHOTO, "JPEG", quality=92)


@pytest.fixture(scope="module")
def styled() -> dict[str, np.ndarray]:
    return {style: stylize(PHOTO, style, seed=0) for style in STYLES}


@pytest.fixture(scope="module")
def engine() -> MotionEngine:
    engine = MotionEngine()
    engine.load()
    return engine


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------- stills
def test_the_styles_are_the_ones_pixverse_offers() -> None:
    assert set(STYLES) == set(get_args(Style))


def test_every_style_changes_the_photo_and_differs_from_the_others(
    styled: dict[str, np.ndarray],
) -> None:
    for style, image in styled.items():
        assert image.shape == PHOTO.shape and image.dtype == np.uint8
        assert mean_abs_diff(image, PHOTO) > 10, style
    for a, b in itertools.combinations(STYLES, 2):
        assert mean_abs_diff(styled[a], styled[b]) > 12, (a, b)


def test_every_style_keeps_the_picture(styled: dict[str, np.ndarray]) -> None:
    # At thumbnail size a style's lines, dots and textures average out and what is left
    # is the composition: it must be the photo's. An unrelated photo scores ~0.2 / ~0.
    for style, image in styled.items():
        correlation = np.corrcoef(thumbnail(PHOTO, 32).ravel(), thumbnail(image, 32).ravel())
        assert correlation[0, 1] > 0.85, style
        assert structural_similarity(thumbnail(PHOTO, 64), thumbnail(image, 64)) > 0.6, style


def test_styles_have_their_signature_looks(styled: dict[str, np.ndarray]) -> None:
    def saturation(rgb: np.ndarray) -> float:
        return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1].mean())

    def colours(rgb: np.ndarray) -> int:
        return len(np.unique(rgb.reshape(-1, 3) // 8, axis=0))

    # Anime and comic: flat areas, so far fewer distinct colours, and more vivid.
    for style in ("anime", "comic"):
        assert colours(styled[style]) < colours(PHOTO) * 0.6, style
        assert saturation(styled[style]) > saturation(PHOTO), style
    # Clay is matte: less contrast than the photo.
    assert styled["clay"].std() < PHOTO.std()
    # Cyberpunk: shadows lean teal (green+blue over red), highlights magenta (red+blue
    # over green).
    luma = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    punk = styled["cyberpunk"].astype(np.float64)
    dark, light = punk[luma < 60], punk[luma > 190]
    assert (dark[:, 1] + dark[:, 2]).mean() / 2 > dark[:, 0].mean()
    assert (light[:, 0] + light[:, 2]).mean() / 2 > light[:, 1].mean()


def test_same_input_and_seed_give_the_same_pixels(styled: dict[str, np.ndarray]) -> None:
    for style in STYLES:
        assert np.array_equal(stylize(PHOTO, style, seed=0), styled[style]), style
    assert np.array_equal(PHOTO, skdata.astronaut())  # the input is left as it was
    # Clay's fingerprint texture is drawn from the seed; any int is a seed.
    assert not np.array_equal(stylize(PHOTO, "clay", seed=1), styled["clay"])
    small = PHOTO[::4, ::4]
    assert np.array_equal(stylize(small, "clay", seed=-7), stylize(small, "clay", seed=-7))
    assert stylize(small, "anime", seed=2**70).shape == small.shape


def test_odd_sizes_and_flat_images_work() -> None:
    for style in STYLES:
        for shape in ((1, 1, 3), (17, 33, 3), (300, 7, 3)):
            for value in (0, 128, 255):
                out = stylize(np.full(shape, value, np.uint8), style)
                assert out.shape == shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown style 'noir'"):
        stylize(PHOTO, "noir")


# -------------------------------------------------------------------------- styled clips
def request(**overrides: Any) -> RenderRequest:
    base = RenderRequest(
        model="test",
        capability=IMAGE_TO_VIDEO,
        image=MediaRef("image_url", data_uri(JPEG, "image/jpeg")),
        short_side=360,
        aspect="16:9",
        duration=2.0,
        seed=3,
    )
    return dataclasses.replace(base, **overrides)


def decoded(engine: MotionEngine, tmp_path: Path, **overrides: Any) -> list[np.ndarray]:
    ctx = EngineTestContext(tmp_path, output_name=f"{overrides.get('style')}.mp4")
    engine.generate(request(**overrides), ctx)
    with av.open(str(ctx.output_path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def steps(frames: list[np.ndarray]) -> list[float]:
    return [mean_abs_diff(a, b) for a, b in itertools.pairwise(frames)]


@pytest.mark.parametrize(
    ("style", "prompt"),
    [
        ("anime", "pan left"),
        ("3d_animation", "zoom in"),
        ("clay", "pan right"),
        ("comic", "zoom in"),
        ("cyberpunk", "slow roll"),
    ],
)
def test_styled_clips_move_smoothly(
    engine: MotionEngine, tmp_path: Path, style: str, prompt: str
) -> None:
    frames = decoded(engine, tmp_path, style=style, prompt=prompt)
    assert len(frames) == 50
    # Frame 0 is the styled still; the move then warps it, so nothing re-styles per frame.
    # frame 0 is the input as the engines fit it (face-aware framing), then stylized
    fitted = frame_image(decode_image(JPEG, "image_url", ImageRules(), 10**8, 10**8), 640, 360)
    assert luma_psnr(frames[0], stylize(fitted, style, seed=3)) > 30
    styled_steps = steps(frames)
    # No flicker: frame-to-frame change follows the eased move, with no spikes...
    assert max(styled_steps) < 3 * statistics.median(styled_steps)
    # ...and is about what the same move over the plain photo gives.
    plain_steps = steps(decoded(engine, tmp_path, prompt=prompt))
    assert statistics.mean(styled_steps) < 2 * statistics.mean(plain_steps) + 1


def test_unknown_style_is_an_engine_error(engine: MotionEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path)
    with pytest.raises(EngineError, match="no style 'noir'"):
        engine.generate(request(style="noir"), ctx)
    assert ctx.fetched == []  # refused before fetching or decoding anything
    assert not ctx.output_path.exists()
