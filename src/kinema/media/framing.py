"""Fit input images to the output's shape without cutting off the subject.

A centre crop of a square portrait to 16:9 keeps the middle band of the picture, which
is where the chest is: the top of the head and often the eyes are cut off. So when the
output's aspect differs from the image's, the crop window is chosen instead:

1. Faces (`kinema.media.faces`, on a copy of at most DETECT_LONG_SIDE pixels): every
   face is kept whole, and if the window can also hold each head with its hair and some
   air above it, the largest face's eyes are placed near the upper third, as a
   photographer frames a portrait.
2. Without faces (or without the face models): the centre, unless the centre is the
   emptier part of the picture; then the window that holds the most detail (gradient
   energy).
3. When no window of the output's shape can keep the faces whole (a close-up face, a
   group across a wide photo made portrait), the picture is not cut: it is shown whole
   along that axis and the rest of the frame is a blurred, mirrored extension of it.

The first and last images of a first/last pair get one window, chosen from the faces of
both, so a morph between them does not jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.media.faces import Face

    Image = npt.NDArray[np.uint8]

DETECT_LONG_SIDE = 1280  # faces are found on a copy this size at most
SAME_ASPECT = 0.005  # relative aspect difference below which nothing is cropped
# Around the face mesh's box (brow to chin, cheek to cheek), in face heights/widths:
# what must stay in the picture (the face, whole) ...
KEEP_TOP, KEEP_BOTTOM, KEEP_SIDE = 0.12, 0.06, 0.06
# ... and what a natural framing also shows (hair, the air above it, the ears, the neck).
HEAD_TOP, HEAD_BOTTOM, HEAD_SIDE = 0.6, 0.25, 0.3
EYE_LINE = 0.38  # the eyes' height in the window, from its top, when the window allows
# Detail-driven crops leave the centre only when it holds less than SALIENCY_EMPTY of
# its share of the picture's detail, and for a window with SALIENCY_GAIN times more.
SALIENCY_EMPTY, SALIENCY_GAIN = 0.5, 1.5
SALIENCY_SIDE = 256  # the detail map's long side
FILL_BLUR = 0.05  # the fill's blur (sigma), as a share of the output's long side
FILL_RAMP = 0.3  # the fill turns from sharp to blurred over this many sigmas


@dataclass(frozen=True)
class Window:
    """A region of the source image, in source pixels, with the output's aspect. It may
    reach outside the image (x < 0, ...): that part of the output is the blurred fill."""

    x: float
    y: float
    width: float
    height: float

    def inside(self, image_w: int, image_h: int) -> bool:
        eps = 1e-6
        return (
            self.x >= -eps
            and self.y >= -eps
            and self.x + self.width <= image_w + eps
            and self.y + self.height <= image_h + eps
        )


@dataclass(frozen=True)
class Subject:
    """The faces of one image in unit coordinates (0..1 of the width and height), as
    (x0, y0, x1, y1) boxes: what must be kept, what a natural framing shows, and the eye
    line of the largest face."""

    keep: tuple[tuple[float, float, float, float], ...]
    head: tuple[tuple[float, float, float, float], ...]
    eyes_y: float | None


def _differs(image_w: int, image_h: int, width: int, height: int) -> bool:
    return abs(math.log((image_w / image_h) / (width / height))) > SAME_ASPECT


def detect_subject(rgb: Image) -> Subject:
    """The faces in `rgb`, for framing; an empty Subject without faces or face models."""
    import cv2
    import numpy as np

    from kinema.media.face_models import model_missing
    from kinema.media.faces import EYE_LEFT, EYE_RIGHT, find_faces

    if model_missing() is not None:
        return Subject((), (), None)
    height, width = rgb.shape[:2]
    scale = min(1.0, DETECT_LONG_SIDE / max(width, height))
    small = rgb
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    faces: list[Face] = find_faces(small)
    unit_w, unit_h = small.shape[1], small.shape[0]
    keep: list[tuple[float, float, float, float]] = []
    head: list[tuple[float, float, float, float]] = []
    for face in faces:
        x, y, w, h = face.box
        for out, (top, bottom, side) in (
            (keep, (KEEP_TOP, KEEP_BOTTOM, KEEP_SIDE)),
            (head, (HEAD_TOP, HEAD_BOTTOM, HEAD_SIDE)),
        ):
            out.append(
                (
                    max(0.0, (x - side * w) / unit_w),
                    max(0.0, (y - top * h) / unit_h),
                    min(1.0, (x + w + side * w) / unit_w),
                    min(1.0, (y + h + bottom * h) / unit_h),
                )
            )
    eyes = None
    if faces:
        points = faces[0].landmarks
        eyes = float(points[EYE_RIGHT, 1] + points[EYE_LEFT, 1]) / 2 / unit_h
    return Subject(tuple(keep), tuple(head), eyes)


def _span(boxes: tuple[tuple[float, float, float, float], ...], axis: int) -> tuple[float, float]:
    return min(b[axis] for b in boxes), max(b[axis + 2] for b in boxes)


def _saliency_offset(rgb: Image, axis: int, length: float) -> float | None:
    """Where (in unit coordinates) along `axis` (0: x, 1: y) a window of `length` (unit)
    holds clearly more detail than the centred one, or None to keep the centre."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    scale = min(1.0, SALIENCY_SIDE / max(width, height))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    gray = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    soft = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    energy = cv2.magnitude(cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1))
    profile = energy.sum(axis=axis).astype(np.float64)  # along `axis`
    cells = profile.size
    span = max(1, min(cells, round(length * cells)))
    sums = np.convolve(profile, np.ones(span), "valid")  # detail in each window position
    centre = (cells - span) // 2
    best = int(np.argmax(sums))
    # Texture is a poor guide to what matters in a photo (fur and foliage are full of
    # it), so the centre is kept unless it is clearly the emptier part of the picture.
    fair_share = float(profile.sum()) * span / cells
    if sums[centre] >= SALIENCY_EMPTY * fair_share:
        return None
    if sums[best] <= SALIENCY_GAIN * max(float(sums[centre]), 1e-9):
        return None
    return float(best / cells)


def choose_window(
    image_w: int, image_h: int, width: int, height: int, subject: Subject, rgb: Image | None
) -> Window:
    """The window of an `image_w` x `image_h` picture shown in a `width` x `height`
    output (see the module's docstring). `rgb` (the picture) is used only for the
    detail-driven crop when `subject` has no faces."""
    target = width / height
    if not _differs(image_w, image_h, width, height):
        return Window(0.0, 0.0, float(image_w), float(image_h))
    # Work along the axis the centre crop would cut: y for an image taller than the
    # output's shape, x for a wider one. Lengths in unit coordinates of that axis.
    axis = 1 if image_w / image_h < target else 0
    full = (image_w, image_h)[axis]
    length = (image_w / target) / image_h if axis == 1 else (image_h * target) / image_w
    start = (1.0 - length) / 2
    if subject.keep:
        low, high = _span(subject.keep, axis)
        head_low, head_high = _span(subject.head, axis)
        if high - low > length:
            return _padded(image_w, image_h, target, axis, low, high, head_low, head_high)
        if axis == 1 and subject.eyes_y is not None:
            start = subject.eyes_y - EYE_LINE * length  # portrait framing
        else:
            start = (head_low + head_high) / 2 - length / 2  # faces centred side to side
        # Each head with its headroom if that fits, else each face whole.
        lo, hi = (head_low, head_high) if head_high - head_low <= length else (low, high)
        start = min(max(start, hi - length), lo)
    elif rgb is not None:
        salient = _saliency_offset(rgb, axis, length)
        start = start if salient is None else salient
    start = min(max(start, 0.0), 1.0 - length) * full
    size = length * full
    if axis == 1:
        return Window(0.0, start, float(image_w), size)
    return Window(start, 0.0, size, float(image_h))


def _padded(
    image_w: int, image_h: int, target: float, axis: int,
    low: float, high: float, head_low: float, head_high: float,
) -> Window:  # fmt: skip
    """A window that shows the faces whole along `axis` and so reaches past the image on
    the other axis (filled by `render`): as much of the heads' framing as the image has,
    centred on the faces along `axis` and on the image across it."""
    low, high = min(low, head_low), max(high, head_high)
    full = (image_w, image_h)[axis]
    size = (high - low) * full
    start = low * full
    if axis == 1:
        window_w = size * target
        return Window((image_w - window_w) / 2, start, window_w, size)
    window_h = size / target
    return Window(start, (image_h - window_h) / 2, size, window_h)


def render(rgb: Image, window: Window, width: int, height: int) -> Image:
    """The `window` of `rgb` at `width` x `height`: resampled like `fit_image` (area
    averaging when shrinking, bicubic when enlarging); any part of the window outside
    the image is a mirrored extension of it, blurred more the further from the edge."""
    import cv2
    import numpy as np

    image_h, image_w = rgb.shape[:2]
    scale = width / window.width
    # The part of the image inside the window, and where it lands in the output.
    x0, y0 = max(0.0, window.x), max(0.0, window.y)
    x1 = min(float(image_w), window.x + window.width)
    y1 = min(float(image_h), window.y + window.height)
    left, top = round((x0 - window.x) * scale), round((y0 - window.y) * scale)
    inner_w = min(width - left, max(1, round((x1 - x0) * scale)))
    inner_h = min(height - top, max(1, round((y1 - y0) * scale)))
    # Whole pixels, the start rounded down as `fit_image` does (a centred window of an
    # odd margin starts half a pixel in).
    left_px, top_px = math.floor(x0 + 1e-6), math.floor(y0 + 1e-6)
    crop_w = max(1, min(image_w - left_px, round(x1 - x0)))
    crop_h = max(1, min(image_h - top_px, round(y1 - y0)))
    crop = np.ascontiguousarray(rgb[top_px : top_px + crop_h, left_px : left_px + crop_w])
    if crop.shape[1] == inner_w and crop.shape[0] == inner_h:
        inner = crop
    else:
        shrinking = crop.shape[0] * crop.shape[1] > inner_w * inner_h
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        inner = np.asarray(cv2.resize(crop, (inner_w, inner_h), interpolation=interpolation))
    pads = (top, height - top - inner_h, left, width - left - inner_w)
    if not any(pads):
        return inner.astype(np.uint8, copy=False)
    extended = cv2.copyMakeBorder(inner, *pads, cv2.BORDER_REFLECT_101)
    sigma = FILL_BLUR * max(width, height)
    blurred = cv2.GaussianBlur(extended, (0, 0), sigma)
    # Blend weight of the blur: 0 on the image, rising to 1 over `ramp` pixels outside it,
    # so the mirrored copy continues the picture at its edge and softens away from it.
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    outside = np.maximum(
        np.maximum(top - ys, ys - (top + inner_h - 1)),
        np.maximum(left - xs, xs - (left + inner_w - 1)),
    )
    ramp = max(2.0, FILL_RAMP * sigma)
    weight = np.clip(outside / ramp, 0.0, 1.0)[..., None]
    out = extended * (1.0 - weight) + blurred * weight
    result: Image = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    result[top : top + inner_h, left : left + inner_w] = inner  # the picture, exactly
    return result


def frame_image(rgb: Image, width: int, height: int) -> Image:
    """Fit one input image to `width` x `height`, keeping its faces in the picture."""
    from kinema.media.images import fit_image

    image_h, image_w = rgb.shape[:2]
    if not _differs(image_w, image_h, width, height):
        return fit_image(rgb, width, height)  # (at most a few pixels' centre crop)
    window = choose_window(image_w, image_h, width, height, detect_subject(rgb), rgb)
    return render(rgb, window, width, height)


def frame_pair(first: Image, last: Image, width: int, height: int) -> tuple[Image, Image]:
    """Fit a first/last pair to `width` x `height` through one window, chosen from the
    faces of both, so the morph between them does not jump. Images of different shapes
    cannot share a window: each is then framed on its own."""
    first_h, first_w = first.shape[:2]
    last_h, last_w = last.shape[:2]
    if abs(math.log((first_w / first_h) / (last_w / last_h))) > SAME_ASPECT:
        return frame_image(first, width, height), frame_image(last, width, height)
    if not _differs(first_w, first_h, width, height):
        return frame_image(first, width, height), frame_image(last, width, height)
    one, two = detect_subject(first), detect_subject(last)
    eyes = one.eyes_y if one.eyes_y is not None else two.eyes_y
    both = Subject(one.keep + two.keep, one.head + two.head, eyes)
    window = choose_window(first_w, first_h, width, height, both, first)
    # The same window in the last image's pixels (unit coordinates are shared).
    sx, sy = last_w / first_w, last_h / first_h
    scaled = Window(window.x * sx, window.y * sy, window.width * sx, window.height * sy)
    return render(first, window, width, height), render(last, scaled, width, height)
