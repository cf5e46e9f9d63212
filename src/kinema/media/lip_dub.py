"""Re-animate the mouth of the face in each frame of a video to new speech (dubbing).

The frames already speak (or are silent): their mouth opens and closes with the original
sound. Opening the mouth further would add the new speech on top of the old, so each
frame is done in two warps, both `FaceAnimator`'s mouth (its lips, jaw and rendered
interior) restricted to the lower face, with no head motion or blinks of its own (the
video has those):

1. close: with the seam put midway between the inner lips (mesh points 13 and 14), the
   upper lip is drawn down and the lower lip and chin up by half the gap each, so the
   original opening (and the teeth or darkness in it) is squeezed shut;
2. open: the closed mouth is opened to the new track's shape for this frame, exactly as
   the talking head opens a photo's mouth.

The face is tracked from frame to frame (one mesh run on the previous frame's crop,
`track_face`), searched for again when lost; a frame without a face passes unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kinema.media.face_anim import (
    CHIN,
    IN_CORNER_L,
    IN_CORNER_R,
    IN_LOWER,
    IN_UPPER,
    NOSE_BOTTOM,
    FaceAnimator,
    MouthTrack,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.media.faces import Face

    Frame = npt.NDArray[np.uint8]

MIN_GAP = 1.0  # pixels: a thinner inner-lip gap is a closed mouth (the mesh's noise)
REST = 0.01  # below this the new track leaves the (closed) mouth as it is
# Closing: the lips meet halfway, the chin rises by the whole gap (a jaw that dropped
# for the old sound comes back up), and the squeeze reaches a little past the measured
# corners, where an open mouth's gap still shows. Tuned on talking-head clips: the
# measured opening of the result then follows the new speech (r 0.86-0.89) far more than
# the old (r 0.2-0.36).
SHARE = 0.5
CLOSE_JAW = 1.0
CLOSE_WIDEN = 1.2
SEARCH_EVERY = 5  # frames between face searches while none is in the picture


class MouthWarp(FaceAnimator):
    """`FaceAnimator`'s mouth alone, over the lower face of one frame."""

    def _init_head(self, face: Face, points: Any) -> None:
        import numpy as np

        # The region the mouth, jaw and chin can move in (the mouth's own regions are
        # cut out of this one): three mouth-widths across, nose to below the chin.
        height, width = self.image.shape[:2]
        right, left, nose, chin = (points[i] for i in (IN_CORNER_R, IN_CORNER_L, NOSE_BOTTOM, CHIN))
        reach = 1.8 * float(np.linalg.norm(left - right)) + 4  # 3.6 half-widths
        below = chin + self.v * 0.5 * self.face_h
        xs = [min(right[0], left[0]) - reach, max(right[0], left[0]) + reach]
        ys = [nose[1] - 0.1 * self.face_h, max(chin[1], below[1]) + 4]
        x0, x1 = max(0, math.floor(float(xs[0]))), min(width, math.ceil(float(xs[1])))
        y0, y1 = max(0, math.floor(float(ys[0]))), min(height, math.ceil(float(ys[1])))
        self.head_c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        self.roi = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
        grid_y, grid_x = np.mgrid[self.roi[0], self.roi[1]].astype(np.float32)
        self.grid = (grid_x, grid_y)
        self.field = (grid_x, grid_y, grid_x)  # FaceAnimator's head motion: never used
        self.map = (np.empty_like(grid_x), np.empty_like(grid_y))

    def warp(self, o: float, w: float, r: float, in_place: bool = False) -> Frame:
        """This frame with the mouth moved by (open, width, round); `o` < 0 closes it
        (by `-o` times the upper and lower reach). `in_place` writes into the frame given
        (only for a frame nothing else holds)."""
        import cv2

        if self.roi[0].stop <= self.roi[0].start or self.roi[1].stop <= self.roi[1].start:
            return self.image
        self.map[0][:] = self.grid[0]
        self.map[1][:] = self.grid[1]
        painted = self._mouth(o, w, r)
        region = cv2.remap(self.image, *self.map, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if o > 0:
            self._paint_interior(region, *painted)
        frame = self.image if in_place else self.image.copy()
        frame[self.roi] = region
        return frame


def inner_gap(face: Face) -> float:
    """How far apart the inner lips are, in pixels, across the mouth."""
    import numpy as np

    points = face.landmarks.astype(np.float64)
    axis = points[263] - points[33]
    down = np.array([-axis[1], axis[0]]) / max(float(np.linalg.norm(axis)), 1e-6)
    return max(0.0, float((points[IN_LOWER] - points[IN_UPPER]) @ down))


def closed(face: Face, share: float) -> Face:
    """`face` with its inner lips (13, 14) both put where they meet when the mouth
    closes: `share` of the way from the upper to the lower one."""
    points = face.landmarks.copy()
    middle = points[IN_UPPER] + share * (points[IN_LOWER] - points[IN_UPPER])
    points[IN_UPPER] = points[IN_LOWER] = middle
    return replace(face, landmarks=points)


def redub(frame: Frame, face: Face, o: float, w: float, r: float, seed: int) -> Frame:
    """`frame` with the mouth of `face` shut, then opened to (open, width, round)."""
    gap = inner_gap(face)
    shut = closed(face, SHARE)
    own = False  # whether `frame` is a copy made here (the input may be shown again)
    if gap >= MIN_GAP:
        closer = MouthWarp(frame, shut, seed)
        closer.up_max, closer.low_max = SHARE * gap, (1 - SHARE) * gap
        closer.jaw = CLOSE_JAW * gap
        closer.half_w *= CLOSE_WIDEN
        frame, own = closer.warp(-1.0, 0.0, 0.0), True
    if o <= REST and abs(w) <= REST and r <= REST:
        return frame
    return MouthWarp(frame, shut, seed).warp(o, w, r, in_place=own)


class Dubber:
    """Re-animates the largest face's mouth in a stream of frames to `track` (one entry
    per frame); `faces_seen` counts the frames that showed a face."""

    def __init__(self, track: MouthTrack, seed: int) -> None:
        self.track = track
        self.seed = seed
        self.faces_seen = 0

    def frames(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        from kinema.media.face_models import release_models
        from kinema.media.faces import largest_face, track_face

        track = self.track
        face: Face | None = None
        look_at = 0  # the next frame worth a full search while no face is tracked
        for index, frame in enumerate(frames):
            if face is not None:
                face = track_face(frame, face)
            if face is None and index >= look_at:
                face = largest_face(frame)
                if face is None:
                    look_at = index + SEARCH_EVERY
                else:  # tracking needs the mesh alone: the detector's memory goes to x264
                    release_models("detector")
            if face is None or index >= len(track.open):
                yield frame
                continue
            self.faces_seen += 1
            o, w, r = (float(a[index]) for a in (track.open, track.width, track.round))
            yield redub(frame, face, o, w, r, self.seed)
