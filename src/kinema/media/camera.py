"""A 2-D "camera" over a still image: eased zooms, pans, tilts and rolls as affine warps.

Every move starts at the identity (frame 0 is exactly the image) and zooms in enough that
pans, tilts and rolls never show an edge. Zooming *out* from the full image has to show
more than the image holds: that margin is the image mirrored at its edges and blurred
progressively. Used by the motion engine (moves from the prompt) and the speaking engine
(a slow push-in under a voice-over).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

ZOOM_IN, ZOOM_OUT, STATIC, ROLL = "zoom_in", "zoom_out", "static", "roll"
PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN = "pan_left", "pan_right", "tilt_up", "tilt_down"
MOVES = (ZOOM_IN, ZOOM_OUT, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN, ROLL)
# Drawn when the prompt names no move: the ones that never show synthesised margins.
GENTLE_MOVES = (ZOOM_IN, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN, ROLL)
_STRIP_ROWS = 64  # rows of the zoom-out margin blended at a time


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Move:
    """One camera move. `amount` is the zoom (zoom moves), the zoom that makes room
    for the travel (pans, tilts) or the angle in degrees (roll); `direction` is ±1."""

    kind: str
    amount: float = 0.0
    direction: int = 1


def _cover_zoom(width: int, height: int, angle: float) -> float:
    """The least zoom at which a frame rotated by `angle` (radians) stays inside the
    image: the rotated frame's bounding box must fit in both directions."""
    c, s = abs(math.cos(angle)), abs(math.sin(angle))
    return max((width * c + height * s) / width, (width * s + height * c) / height)


def camera(move: Move, t: float, width: int, height: int) -> tuple[float, float, float, float]:
    """(zoom, angle in radians, x, y offset of the view centre in pixels) at time
    t in [0, 1]. All are 0 (zoom 1) at t = 0; offsets stay inside what the zoom allows."""
    eased = _smoothstep(t)
    zoom, angle, dx, dy = 1.0, 0.0, 0.0, 0.0
    if move.kind == ZOOM_IN:
        zoom = 1.0 + move.amount * eased
    elif move.kind == ZOOM_OUT:
        zoom = 1.0 / (1.0 + move.amount * eased)
    elif move.kind in (PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN):
        # Zoom in over the first 40 % to make room, travel over the whole clip.
        zoom = 1.0 + move.amount * _smoothstep(t / 0.4)
        final = 1.0 - 1.0 / (1.0 + move.amount)
        sign = -1.0 if move.kind in (PAN_LEFT, TILT_UP) else 1.0
        room = 1.0 - 1.0 / zoom
        if move.kind in (PAN_LEFT, PAN_RIGHT):
            dx = sign * width / 2 * min(final * eased, room)
        else:
            dy = sign * height / 2 * min(final * eased, room)
    elif move.kind == ROLL:
        angle = math.radians(move.amount * move.direction * eased)
        zoom = _cover_zoom(width, height, angle) * (1.0 + 0.03 * eased)
    return zoom, angle, dx, dy


def affine(
    zoom: float, angle: float, dx: float, dy: float, width: int, height: int, margin: int = 0
) -> npt.NDArray[np.float64]:
    """The source -> output matrix for cv2.warpAffine: the view centred at (centre + d)
    in a source padded by `margin`, rotated by `angle` and scaled by `zoom`."""
    import numpy as np

    cx, cy = (width - 1) / 2, (height - 1) / 2
    a, b = zoom * math.cos(angle), zoom * math.sin(angle)
    sx, sy = cx + dx + margin, cy + dy + margin
    return np.array([[a, b, cx - a * sx - b * sy], [-b, a, cy + b * sx - a * sy]])


def _extended(image: Frame, margin: int) -> Frame:
    """`image` with a `margin` of mirrored content that blurs more the further it is
    from the edge, for zoom-outs; the interior is the image, bit for bit."""
    import cv2
    import numpy as np

    padded: Frame = np.asarray(
        cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REFLECT_101),
        np.uint8,
    )
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=max(2.0, margin / 4))
    height, width = image.shape[:2]
    ys = np.abs(np.arange(height + 2 * margin) - (margin + (height - 1) / 2)) - (height - 1) / 2
    xs = np.abs(np.arange(width + 2 * margin) - (margin + (width - 1) / 2)) - (width - 1) / 2
    # Mixed into `padded` a strip of rows at a time: float32 copies of the whole padded
    # image would be ~35 MB each at 1080p, next to the encoder starting up.
    column = np.maximum(xs, 0)[None, :]
    for top in range(0, padded.shape[0], _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        outside = np.maximum(np.maximum(ys[rows], 0)[:, None], column)
        weight = np.clip(outside / (margin / 2), 0.0, 1.0)[:, :, None].astype(np.float32)
        mixed = padded[rows] * (1.0 - weight) + blurred[rows] * weight
        padded[rows] = np.clip(mixed + 0.5, 0, 255)
    return padded


def render_frames(image: Frame, move: Move, count: int) -> Iterator[Frame]:
    """The `count` frames of `move` over the fitted `image`; frame 0 is `image` itself.

    Frames are warped into a ring of `pipeline.RING_FRAMES` buffers, each reused once
    that many later frames exist (see `pipeline.prefetch`): a consumer must be done with
    a frame before it asks for the ring's worth after it, or copy it."""
    import cv2
    import numpy as np

    from kinema.media.pipeline import RING_FRAMES

    height, width = image.shape[:2]
    if move.kind == STATIC:
        for _ in range(count):
            yield image
        return
    margin = 0
    source = image
    if move.kind == ZOOM_OUT:
        margin = math.ceil(max(width, height) * move.amount / 2) + 4
        source = _extended(image, margin)
    yield image
    ring = [np.empty_like(image) for _ in range(min(RING_FRAMES, count - 1))]
    for index in range(1, count):
        matrix = affine(*camera(move, index / (count - 1), width, height), width, height, margin)
        frame = ring[index % len(ring)]
        cv2.warpAffine(
            source, matrix, (width, height), dst=frame, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
        yield frame
