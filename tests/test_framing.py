"""Fitting input images to another aspect without losing the face (kinema.media.framing),
faces cut by the image's edge (kinema.media.faces), and the engines that use both: real
photos (scikit-image's astronaut, a square portrait) in, MP4s decoded with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from kinema.engines.morph import MorphEngine
from kinema.engines.motion import MotionEngine
from kinema.media.faces import Face, find_faces, largest_face
from kinema.media.framing import frame_image, frame_pair
from kinema.media.images import fit_image
from kinema.render_request import FIRST_LAST_FRAME, IMAGE_TO_VIDEO, MediaRef, RenderRequest
from tests.engine_context import EngineTestContext, data_uri, encode_image, picture, psnr

Image = npt.NDArray[np.uint8]
ASTRONAUT: Image = data.astronaut()  # 512x512, the face in the upper half
WIDE = (640, 360)  # Veo's 16:9 at 360p


def only_face(image: Image) -> Face:
    faces = find_faces(image)
    assert len(faces) == 1, f"{len(faces)} faces"
    return faces[0]


def assert_whole_with_headroom(face: Face, image: Image) -> None:
    """The mesh's box (brow to chin) lies inside the frame, with room above it for the
    top of the head and a margin on every other side."""
    x, y, w, h = face.box
    height, width = image.shape[:2]
    assert y >= 0.3 * h, f"only {y} px above a {h} px face"
    assert x > 0.05 * w and x + w < width - 0.05 * w
    assert y + h < height - 0.05 * h


def close_up() -> Image:
    """A portrait crop in which the head fills the height: no 16:9 window of it can show
    the whole face."""
    crop = ASTRONAUT[30:250, 140:310]
    return np.ascontiguousarray(cv2.resize(crop, (340, 440), interpolation=cv2.INTER_CUBIC))


def cut_at_the_left(seed: int = 5) -> Image:
    """A 16:9 picture whose only face is cut by the left edge: about a third of it is
    outside the picture."""
    x, y, w, h = 178, 69, 95, 109  # the astronaut's face
    head = ASTRONAUT[y - 40 : y + h + 40, x - 30 : x + w + 30]
    scale = 140 / h
    head = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = picture(1280, 720, seed=seed)
    cut = int(0.4 * head.shape[1])
    top = 360 - head.shape[0] // 2
    canvas[top : top + head.shape[0], : head.shape[1] - cut] = head[:, cut:]
    return canvas


def frames_of(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def png_ref(field: str, image: Image) -> MediaRef:
    return MediaRef(field, data_uri(encode_image(image, "PNG"), "image/png"))


# ---------------------------------------------------------------------------- framing
def test_square_portrait_to_16_9_keeps_the_whole_face_with_headroom() -> None:
    fitted = frame_image(ASTRONAUT, *WIDE)
    assert fitted.shape == (360, 640, 3)
    assert_whole_with_headroom(only_face(fitted), fitted)
    # The centre crop, for contrast, cuts through the forehead.
    centred = fit_image(ASTRONAUT, *WIDE)
    assert only_face(centred).box[1] == 0
    # A crop, not a squeeze: the face keeps its proportions (the window is 512x288).
    face, original = only_face(fitted), only_face(ASTRONAUT)
    ratio = (face.box[3] / face.box[2]) / (original.box[3] / original.box[2])
    assert abs(ratio - 1) < 0.08


def test_landscape_to_9_16_centres_the_face() -> None:
    wide = np.ascontiguousarray(cv2.resize(ASTRONAUT, (960, 540), interpolation=cv2.INTER_AREA))
    fitted = frame_image(wide, 360, 640)
    face = only_face(fitted)
    assert_whole_with_headroom(face, fitted)
    assert abs(face.box[0] + face.box[2] / 2 - 180) < 60  # near the middle


def test_a_face_no_crop_can_keep_is_padded_with_a_blurred_extension() -> None:
    image = close_up()
    fitted = frame_image(image, *WIDE)
    face = only_face(fitted)
    x, y, w, h = face.box
    assert y > 0 and y + h < 360 and x > 0 and x + w < 640  # whole
    # Across, the picture is shown whole, sharp, in the middle (the head fills 350 of
    # its 440 rows, shown on 360: 350 columns wide); the sides are filled, not cut.
    left = (640 - 350) // 2
    middle = fitted[:, left + 4 : 640 - left - 4].astype(np.float32)

    def sharpness(region: npt.NDArray[np.float32]) -> float:
        return float(np.abs(cv2.Laplacian(region, cv2.CV_32F)).mean())

    # The fill is the picture blurred: not black bars and not a sharp mirror image.
    for side in (fitted[:, : left - 30], fitted[:, 640 - left + 30 :]):
        assert side.mean() > 40
        assert sharpness(side.astype(np.float32)) < 0.2 * sharpness(middle)
    # Nothing of the picture's width is lost: its left and right edges are in the frame.
    scaled = cv2.resize(image[:350], (350, 360), interpolation=cv2.INTER_AREA)
    assert psnr(fitted[:, left : left + 350], scaled) > 35


def test_same_aspect_is_a_plain_resize_and_faceless_pictures_keep_their_detail() -> None:
    square = frame_image(ASTRONAUT, 320, 320)
    assert np.array_equal(square, fit_image(ASTRONAUT, 320, 320))
    # No face: the window holds as much of the detail as it can. A picture flat except
    # for a textured block at its top shows the block.
    flat = np.full((600, 600, 3), 120, np.uint8)
    flat[10:110, 100:500] = picture(400, 100, seed=2)
    fitted = frame_image(flat, *WIDE)
    assert np.abs(cv2.Laplacian(fitted[:100].astype(np.float32), cv2.CV_32F)).mean() > 1.0
    assert np.abs(fit_image(flat, *WIDE)[:100].astype(int) - 120).max() == 0  # centre: flat


def test_first_and_last_images_share_one_window() -> None:
    # The last image is a "ruler" the size of the first: each row says its own index, so
    # the fitted last image shows which rows the window took.
    rows = np.repeat(np.arange(512, dtype=np.float32)[:, None], 512, axis=1) / 2
    ruler = np.ascontiguousarray(np.repeat(rows[..., None], 3, axis=2).astype(np.uint8))
    first, last = frame_pair(ASTRONAUT, ruler, *WIDE)
    # The ruler has no face: the window is the one the first image's face asks for (the
    # top 288 rows, as the face is near the top) and the last image shows the same rows.
    assert np.array_equal(first, frame_image(ASTRONAUT, *WIDE))
    taken = last[:, 320, 0].astype(float) * 2  # source rows, to 2 rows
    assert taken[0] <= 2 and 283 <= taken[-1] <= 290
    assert_whole_with_headroom(only_face(first), first)
    # A face in the last image that the first's framing alone would cut is kept too.
    lower = np.ascontiguousarray(np.roll(ASTRONAUT, 150, axis=0))
    first, last = frame_pair(ASTRONAUT, lower, *WIDE)
    for fitted in (first, last):
        _, y, _, h = only_face(fitted).box
        assert y > 0 and y + h < 360


# ------------------------------------------------------------------------------ faces
def test_a_face_cut_by_the_edge_is_found() -> None:
    image = cut_at_the_left()
    faces = find_faces(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.box[0] == 0 and 40 < face.box[3] < 220
    assert face.landmarks[:, 0].min() < 0  # part of the face lies outside the picture
    nose = face.landmarks[1]
    assert 0 < nose[0] < 120 and 300 < nose[1] < 420
    assert largest_face(image) is not None


# ---------------------------------------------------------------------------- engines
@pytest.fixture(scope="module")
def motion() -> MotionEngine:
    engine = MotionEngine()
    engine.load()
    return engine


def test_motion_engine_frames_the_face_and_starts_on_the_fitted_image(
    motion: MotionEngine, tmp_path: Path
) -> None:
    ctx = EngineTestContext(tmp_path)
    request = RenderRequest(
        model="google/veo-3.1-i2v-fast", capability=IMAGE_TO_VIDEO, prompt="static shot",
        image=png_ref("image_url", ASTRONAUT), short_side=360, aspect="16:9", duration=0.4,
    )  # fmt: skip
    motion.generate(request, ctx)
    frames = frames_of(ctx.output_path)
    expected = frame_image(ASTRONAUT, *WIDE)
    assert psnr(frames[0], expected) >= 35
    assert_whole_with_headroom(only_face(frames[0]), frames[0])


def test_morph_pair_is_framed_once_and_ends_on_both_fitted_images(tmp_path: Path) -> None:
    engine = MorphEngine()
    engine.load()
    last_image = np.ascontiguousarray(cv2.convertScaleAbs(ASTRONAUT, alpha=0.9, beta=12))
    ctx = EngineTestContext(tmp_path)
    request = RenderRequest(
        model="google/veo-3.1-lite-generate-001", capability=FIRST_LAST_FRAME,
        prompt="she smiles", image=png_ref("image_url", ASTRONAUT),
        last_image=png_ref("last_image_url", last_image), short_side=360, aspect="16:9",
        duration=0.6,
    )  # fmt: skip
    engine.generate(request, ctx)
    frames = frames_of(ctx.output_path)
    first, last = frame_pair(ASTRONAUT, last_image, *WIDE)
    assert psnr(frames[0], first) >= 35 and psnr(frames[-1], last) >= 35
    for frame in (frames[0], frames[len(frames) // 2], frames[-1]):
        assert_whole_with_headroom(only_face(frame), frame)
