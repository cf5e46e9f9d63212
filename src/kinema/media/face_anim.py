"""Make the face in a still image speak: mouth, jaw, blinks and a little head motion.

Everything is one backward map per frame for `cv2.remap`, built only over the head's
bounding region (the rest of the frame is the input, untouched):

1. Head motion: a small rotation about the neck, scale and drift, faded out by an
   elliptical mask M around the head: `grid + a·(M·x) + b·(M·y) + c·M` per map plane
   over precomputed planes, a few OpenCV passes.
2. Mouth: in a frame aligned with the mouth (s along the lips, t across the seam), the
   upper lip lifts and the lower lip and chin drop; pixels between the parted lips all
   sample the seam, and a rendered interior (dark cavity, upper teeth, tongue) is
   composited over exactly that gap, anti-aliased. Width and rounding move the corners;
   the jaw fades out below the chin and towards the ears. That displacement is smooth,
   so on large faces it is computed at half resolution and upsampled; the gap's
   coverage is computed at full resolution over a thin band around the lips.
3. Blinks: the upper lid skin stretches down over the eye, which is squeezed into the
   lash line: what a closing eye looks like from the front.

Local deformations are evaluated at the head-moved coordinates, so they ride along.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from kinema.media.faces import Face

# Landmark indices of MediaPipe's 468-point mesh.
IN_CORNER_R, IN_CORNER_L, IN_UPPER, IN_LOWER, NOSE_BOTTOM, CHIN = 78, 308, 13, 14, 2, 152
EYES = ((33, 133, 159, 145), (362, 263, 386, 374))  # corners (image left, right), lids

MAX_GAP = 0.11  # inner-lip gap at open = 1, in face heights
UPPER_SHARE = 0.25  # the upper lip rises by this share of the gap, the jaw does the rest
JAW = 0.8  # chin drop as a share of the gap
HEAD_TURN_DEG, HEAD_DRIFT, HEAD_SCALE, HEAD_NOD = 1.3, 0.008, 0.006, 0.012
# The mouth's colours under a face of average brightness.
TEETH_RGB, CAVITY_RGB = (232.0, 226.0, 212.0), (52.0, 18.0, 18.0)
RIM_RGB, TONGUE_RGB = (132.0, 64.0, 60.0), (140.0, 66.0, 64.0)
LOUDNESS_SHARE = 0.8  # of a spoken text's mouth opening, the share that follows its loudness


@dataclass
class MouthTrack:
    open: NDArray[np.float32]  # per output frame, 0 closed .. 1 wide open
    width: NDArray[np.float32]  # -1 pursed/narrow .. 0 neutral .. 1 wide smile
    round: NDArray[np.float32]  # 0..1 lip rounding ("oo")


def _smooth(x: Any) -> Any:
    """Smoothstep of clip(x, 0, 1), for arrays and floats."""
    import numpy as np

    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def mouth_track_from_audio(
    samples: NDArray[np.float32], sample_rate: int, n_frames: int, fps: int = 25
) -> MouthTrack:
    """Mouth shapes for `n_frames` video frames from mono speech samples.

    Opening follows the loudness (Hann-windowed RMS per frame) normalised by its 95th
    percentile, so a quiet recording opens the mouth as much as a loud one; frames more
    than ~18 dB under that reference, or under -55 dBFS, keep it shut. Lip shape follows
    the spectral centroid against the clip's own median: brighter sounds (ee, s) spread
    the lips, darker ones (oo, o) round them.
    """
    import numpy as np

    hop = sample_rate / fps
    window = max(16, round(2 * hop))
    signal = np.zeros(round(n_frames * hop) + 2 * window, dtype=np.float32)
    usable = np.asarray(samples, dtype=np.float32)[: signal.size - 2 * window]
    signal[window : window + usable.size] = usable
    starts = (window + (np.arange(n_frames) + 0.5) * hop - window / 2).astype(np.int64)
    frames = signal[starts[:, None] + np.arange(window)[None, :]]
    hann = np.hanning(window).astype(np.float32)
    rms = np.sqrt((frames**2 * hann).sum(1) / hann.sum())
    reference = float(np.percentile(rms, 95)) if n_frames else 0.0
    zeros = np.zeros(n_frames, dtype=np.float32)
    if reference < 10 ** (-55 / 20):  # no usable sound at all: the mouth stays shut
        return MouthTrack(zeros, zeros.copy(), zeros.copy())
    gate = max(reference * 10 ** (-18 / 20), 10 ** (-55 / 20))
    level = np.clip((rms - gate) / (reference - gate), 0.0, 1.0) ** 0.8
    # Lips cannot jump between frames: a short symmetric smoothing keeps it in sync.
    opening = np.convolve(np.pad(level, 1, mode="edge"), [0.25, 0.5, 0.25], "valid")

    freqs = np.fft.rfftfreq(window, 1 / sample_rate)
    band = (freqs > 200) & (freqs < 6000)
    power = (np.abs(np.fft.rfft(frames * hann, axis=1)) ** 2)[:, band]
    centroid = (power * freqs[band]).sum(1) / np.maximum(power.sum(1), 1e-12)
    log_c = np.log2(np.maximum(centroid, 1.0))
    voiced = log_c[opening > 0.05] if (opening > 0.05).any() else log_c
    middle = float(np.median(voiced))
    z = (log_c - middle) / max(float(np.median(np.abs(voiced - middle))) * 1.48, 0.15)
    presence = np.clip(opening * 3.0, 0.0, 1.0)
    kernel = np.array([1, 2, 3, 2, 1]) / 9
    width = np.convolve(np.pad(0.6 * np.tanh(z) * presence, 2, "edge"), kernel, "valid")
    rounding = np.convolve(np.pad(np.clip(-0.6 * z, 0, 1) * presence, 2, "edge"), kernel, "valid")
    return MouthTrack(*(a.astype(np.float32) for a in (opening, width, rounding)))


def with_loudness(
    track: MouthTrack, samples: NDArray[np.float32], sample_rate: int, fps: int = 25
) -> MouthTrack:
    """A phoneme-driven `track` whose opening also follows the loudness of the speech
    it was made for (`samples`, placed as in the clip): LOUDNESS_SHARE of the opening
    is `mouth_track_from_audio`'s. Visemes give the shapes, closures and anticipation,
    but every vowel of a kind opens the jaw alike; the voice says which syllables are
    stressed, and a viewer matches the jaw to that."""
    import numpy as np

    heard = mouth_track_from_audio(samples, sample_rate, len(track.open), fps)
    opening = (1.0 - LOUDNESS_SHARE) * track.open + LOUDNESS_SHARE * heard.open
    return MouthTrack(opening.astype(np.float32), track.width, track.round)


class FaceAnimator:
    """Renders frames of `face` in `image` (already at the output size) speaking."""

    def __init__(self, image: NDArray[np.uint8], face: Face, seed: int = 0) -> None:
        import numpy as np

        self.image = np.ascontiguousarray(image)
        self.rng = random.Random(seed)
        points = face.landmarks.astype(np.float64)
        self.face_h = float(np.linalg.norm(points[CHIN] - points[10]))
        axis = points[263] - points[33]
        self.u = axis / np.linalg.norm(axis)  # along the eyes, image left to right
        self.v = np.array([-self.u[1], self.u[0]])  # down the face
        self._init_head(face, points)
        self._init_mouth(points)
        self.eyes = [self._init_eye(points, *ids) for ids in EYES]
        # Head wobble: three incommensurate sines per parameter, drawn from the seed.
        draw = self.rng.uniform
        self.waves = [
            [(draw(0.08, 0.45), draw(0, 2 * math.pi)) for _ in range(3)] for _ in range(4)
        ]
        self.blinks: list[float] = []  # start times in seconds, extended on demand

    # ------------------------------------------------------------------ setup
    def _init_head(self, face: Face, points: Any) -> None:
        import numpy as np

        x, y, w, h = face.box
        self.head_c = np.array([x + w / 2, y + h / 2 - 0.08 * h])
        radii = np.array([0.75 * w, 0.72 * h])
        bounds = np.r_[np.floor(self.head_c - 1.5 * radii), np.ceil(self.head_c + 1.5 * radii)]
        x0, y0, x1, y1 = np.clip(bounds, 0, self.image.shape[1::-1] * 2).astype(int).tolist()
        self.roi = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
        ys, xs = np.mgrid[self.roi[0], self.roi[1]].astype(np.float32)
        r = np.hypot((xs - self.head_c[0]) / radii[0], (ys - self.head_c[1]) / radii[1])
        mask = (1.0 - _smooth((r - 1.0) / 0.5)).astype(np.float32)
        px, py = (float(c) for c in points[CHIN] + 0.15 * self.face_h * self.v)  # the neck
        # Planar float32 maps: OpenCV's per-plane arithmetic is several times faster
        # than cv2.transform over interleaved channels at these sizes. The pixel grid is
        # kept as one row of x and one column of y, added by broadcasting (two planes of
        # the region less to hold: 1.6 MB for a 720p portrait's head).
        self.field = (mask * (xs - px), mask * (ys - py), mask)
        self.grid = (xs[:1].copy(), ys[:, :1].copy())
        self.map = (np.empty_like(xs), np.empty_like(ys))

    def _init_mouth(self, points: Any) -> None:
        import numpy as np

        right, left = points[IN_CORNER_R], points[IN_CORNER_L]
        upper, lower = points[IN_UPPER], points[IN_LOWER]
        self.mouth_c = (right + left) / 2
        self.half_w = float(np.linalg.norm(left - right)) / 2
        # Lips already parted (a smile showing teeth): split just above the lower lip,
        # so what shows between them stays with the upper jaw; else at the middle.
        self.open0 = max(0.0, float((lower - upper) @ self.v))
        seam_mid = lower - self.v * min(self.open0 / 2, 1.0)
        features = (right, seam_mid, left, points[NOSE_BOTTOM], points[CHIN])
        local = [self._local(p[0], p[1], self.mouth_c) for p in features]
        fit = np.polyfit([q[0] for q in local[:3]], [q[1] for q in local[:3]], 2)
        self.seam = tuple(float(c) for c in fit)
        gap = MAX_GAP * self.face_h
        self.up_max, self.low_max = UPPER_SHARE * gap, (1 - UPPER_SHARE) * gap
        self.jaw = JAW * gap
        self.t_nose = max(-float(local[3][1]), 2.0)
        self.t_chin = max(float(local[4][1]), self.low_max + 4.0)
        corners = [
            self.mouth_c + self.u * s + self.v * t
            for s in (-3.2 * self.half_w, 3.2 * self.half_w)
            for t in (-self.t_nose - 2, self.t_chin + 0.4 * self.face_h)
        ]
        # Half-resolution displacement once the mouth is wide enough to lose nothing;
        # the region then has even sides, so 2x2 blocks line up with the upsampling.
        self.step = 2 if self.half_w >= 12 else 1
        self.mouth_roi = self._within_head(np.array(corners), (2, 2, 2, 2), self.step)
        # Where the gap can show: the lips' length, from the highest upper lip to the
        # lowest lower lip, plus what the head's motion can shift them by.
        hw, reach = self.half_w, 0.05 * self.face_h + 2
        band = [
            self.mouth_c + self.u * x + self.v * (self._seam(x) + t)
            for x in np.linspace(-1.15 * hw, 1.15 * hw, 9)
            for t in (-self.up_max - 0.1 * hw, self.low_max)
        ]
        self.band = self._within_head(np.array(band), (reach,) * 4, 1)
        luma = float(self.image[self.roi].mean())
        self.light = min(max(luma / 150.0, 0.45), 1.15)

    def _within_head(self, points: Any, margins: tuple[float, ...], step: int) -> Any:
        """Slices, relative to the head region and inside it, of the box around `points`
        grown by (left, top, right, bottom) pixels, with sides a multiple of `step`."""
        cut = []
        for axis, r in ((1, self.roi[0]), (0, self.roi[1])):
            start = max(r.start, math.floor(float(points[:, axis].min()) - margins[axis]))
            stop = min(r.stop, math.ceil(float(points[:, axis].max()) + margins[axis + 2]))
            cut.append((start - r.start, max(0, stop - start) // step * step))
        return tuple(slice(a, a + n) for a, n in cut)

    def _seam(self, s: Any) -> Any:
        """Where the lips meet (t) along them; straight past the corners."""
        import numpy as np

        c2, c1, c0 = self.seam
        clipped = np.clip(s, -self.half_w, self.half_w)
        return (c2 * clipped + c1) * clipped + c0

    def _init_eye(self, points: Any, a: int, b: int, top: int, bottom: int) -> dict[str, Any]:
        import numpy as np

        centre = (points[a] + points[b]) / 2
        half = float(np.linalg.norm(points[b] - points[a])) / 2
        up, low = (float((points[i] - centre) @ self.v) for i in (top, bottom))
        height = max(low - up, 1.0)
        corners = np.array([centre + self.u * s * half * 1.2 for s in (-1, 1)])
        reach = 0.05 * self.face_h + 2  # how far the head's motion can move the eye
        margins = (reach, reach - up + 1.3 * height, reach, reach + low)
        roi = self._within_head(corners, margins, 1)
        return {"c": centre, "half": half, "up": up, "low": low, "lid": 1.3 * height, "roi": roi}

    # ------------------------------------------------------------------ motion
    def _blink(self, t: float) -> float:
        """Lid closure in [0, 1] at time t: blinks every 2-5.5 s, each ~0.26 s long."""
        while not self.blinks or self.blinks[-1] < t + 1.0:
            last = self.blinks[-1] if self.blinks else self.rng.uniform(-1.5, 0.3)
            self.blinks.append(last + self.rng.uniform(2.0, 5.5))
        closure = 0.0
        for start in self.blinks:
            dt = t - start
            if 0 <= dt < 0.26:
                closure = max(closure, dt / 0.08 if dt < 0.08 else 1 - (dt - 0.12) / 0.14)
        return min(max(closure, 0.0), 1.0)

    def _head(self, t: float, emphasis: float) -> tuple[tuple[float, float, float], ...]:
        """Per map plane, the weights of (M·x, M·y, M) in this frame's backward offset."""
        ease = float(_smooth(t / 0.8))
        wob = [sum(math.sin(2 * math.pi * f * t + p) for f, p in w) / 3 for w in self.waves]
        angle = math.radians(HEAD_TURN_DEG) * ease * wob[0]
        scale = 1.0 + HEAD_SCALE * ease * wob[1]
        tx = HEAD_DRIFT * self.face_h * ease * wob[2]
        ty = (HEAD_DRIFT * ease * wob[3] + HEAD_NOD * emphasis) * self.face_h
        ca, sb = scale * math.cos(angle) - 1.0, scale * math.sin(angle)
        # forward offset = M (A - I)(p - pivot) + M t; backward = minus that
        return ((-ca, sb, -tx), (-sb, -ca, -ty))

    # ------------------------------------------------------------------ rendering
    def frames(self, track: MouthTrack) -> Iterator[NDArray[np.uint8]]:
        """One RGB frame per entry of `track`, at 25 fps. Frames are drawn into a ring of
        `pipeline.RING_FRAMES` buffers, each reused once that many later frames exist (as
        the camera moves do): a consumer lets go of a frame before it asks for the next,
        and one that keeps frames copies them. Only the head's region changes, so each
        buffer holds the photo once and a frame rewrites just that region."""
        import numpy as np

        from kinema.media.pipeline import RING_FRAMES

        opening = np.clip(np.asarray(track.open, dtype=np.float64), 0, 1)
        widths, rounds = np.clip(track.width, -1, 1), np.clip(track.round, 0, 1)
        ring = [self.image.copy() for _ in range(min(RING_FRAMES, len(opening)))]
        emphasis = 0.0  # a slow follower of the opening: nods land after stresses
        for i, value in enumerate(opening):
            emphasis += (value - emphasis) * 0.12
            out = ring[i % len(ring)]
            yield self._frame(
                i / 25, float(value), float(widths[i]), float(rounds[i]), emphasis, out
            )

    def _frame(self, t: float, o: float, w: float, r: float, emphasis: float, frame: Any) -> Any:
        import cv2
        import numpy as np

        mx, my, m = self.field
        heads = self._head(t, emphasis)
        for plane, grid, (a, b, c) in zip(self.map, self.grid, heads, strict=True):
            cv2.addWeighted(mx, a, my, b, 0.0, dst=plane)
            cv2.scaleAdd(m, c, plane, dst=plane)
            np.add(plane, grid, out=plane)
        if (blink := self._blink(t)) > 0:
            for eye in self.eyes:
                self._close_eye(eye, blink)
        alpha = self._mouth(o, w, r) if o > 0 or w or r else None
        region = cv2.remap(self.image, *self.map, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if alpha is not None:
            self._paint_interior(region, *alpha)
        frame[self.roi] = region  # the rest of `frame` is the photo already
        return frame

    def _local(self, xs: Any, ys: Any, centre: Any) -> tuple[Any, Any]:
        """Map coordinates as (along, across) a feature centred at `centre`; Python
        floats keep the arithmetic in float32."""
        ux, uy, cx, cy = float(self.u[0]), float(self.u[1]), float(centre[0]), float(centre[1])
        return (xs - cx) * ux + (ys - cy) * uy, (ys - cy) * ux - (xs - cx) * uy

    def _image(self, s: Any, t: Any, centre: Any) -> tuple[Any, Any]:
        ux, uy, cx, cy = float(self.u[0]), float(self.u[1]), float(centre[0]), float(centre[1])
        return cx + s * ux - t * uy, cy + s * uy + t * ux

    def _close_eye(self, eye: dict[str, Any], closure: float) -> None:
        import numpy as np

        xs, ys = self.map[0][eye["roi"]], self.map[1][eye["roi"]]
        s, t = self._local(xs, ys, eye["c"])
        shape = np.clip(1 - (s / eye["half"]) ** 2, 0, 1) ** 0.8
        up, low = eye["up"] * shape, eye["low"] * shape
        top = up - eye["lid"]
        lid = up + 0.97 * closure * (low - up)  # a lash line's width stays open
        stretched = top + (t - top) * (up - top) / np.maximum(lid - top, 1e-3)
        squeezed = up + (t - lid) * (low - up) / np.maximum(low - lid, 1e-3)
        t_src = np.where((t >= top) & (t <= low), np.where(t <= lid, stretched, squeezed), t)
        xs[:], ys[:] = self._image(s, t_src, eye["c"])

    def _lips(self, s: Any, t: Any, o: float, w: float, r: float) -> tuple[Any, ...]:
        """For mouth-frame coordinates: t from the seam after a smile's lift, s over the
        half-width, the gap's upper and lower edges (in t) and s in the source."""
        import numpy as np

        hw = self.half_w
        t = t - self._seam(s)
        x = s * (1 / hw)
        corner = 0.10 * w - 0.22 * r  # corners move out (smile) or in (pursed, "oo")
        s_src = s
        if w > 0 or corner:
            near = np.exp(-np.square(t * (1 / (0.9 * hw))))
            if w > 0:  # a smile lifts the corners
                t += (0.08 * hw * w) * np.minimum(x * x, 1.0) * near
            if corner:
                ax = np.abs(x)
                reach = np.copysign(np.minimum(ax, 1 - _smooth((ax - 1) * (1 / 1.2))), x)
                s_src = s - (hw * corner) * reach * near
        profile = np.maximum(1 - np.square(s * (1 / (hw * (1 + corner)))), 0)
        profile **= 0.75 - 0.25 * r
        return t, x, profile * (-o * self.up_max), profile * (o * self.low_max), s_src

    def _mouth(self, o: float, w: float, r: float) -> tuple[Any, Any, Any, Any]:
        """Applies the mouth to the map; returns (alpha, depth, s/half-width, gap) over
        the lip band for the interior: its coverage per pixel, depth in the gap (0 upper
        lip .. 1 lower), position along the lips and the gap's height."""
        import cv2
        import numpy as np

        # Coverage first, from the head-moved map before the mouth changes it.
        s, t = self._local(self.map[0][self.band], self.map[1][self.band], self.mouth_c)
        t, x, e_up, e_low, _ = self._lips(s, t, o, w, r)
        alpha = np.clip(np.minimum(t + 0.5, e_low) - np.maximum(t - 0.5, e_up), 0, 1)
        gap = e_low - e_up
        depth = np.clip((t - e_up) / np.maximum(gap, 1e-3), 0, 1)

        planes = [self.map[0][self.mouth_roi], self.map[1][self.mouth_roi]]
        height, width = planes[0].shape
        if not height or not width:
            return alpha, depth, x, gap
        half, area = (width // 2, height // 2), cv2.INTER_AREA  # exact for affine maps
        coarse = (
            [cv2.resize(p, half, interpolation=area) for p in planes] if self.step > 1 else planes
        )
        s, t_raw = self._local(coarse[0], coarse[1], self.mouth_c)
        t, ax, e_up, e_low, s_src = self._lips(s, t_raw, o, w, r)
        ax = np.abs(ax, out=ax)
        lift = 1 - _smooth((-t - self.up_max) * (1 / max(self.t_nose - self.up_max, 1.0)))
        t_up = np.minimum(t - e_up * lift, 0)
        ramp = _smooth((t - self.low_max) * (1 / max(self.t_chin - self.low_max, 1.0)))
        side = 1 - _smooth((ax - 1.2) * (1 / 1.8))
        neck = 1 - _smooth((t - self.t_chin) * (1 / (0.35 * self.face_h)))
        drop = (e_low * (1 - ramp) + (o * self.jaw) * side * ramp) * neck
        t_src = np.where(t < 0, t_up, np.maximum(t - drop, 0)) + self._seam(s_src)
        moved = self._image(s_src, t_src, self.mouth_c)
        for plane, old, new in zip(planes, coarse, moved, strict=True):
            shift = new - old
            if self.step == 2:
                shift = cv2.resize(shift, (width, height), interpolation=cv2.INTER_LINEAR)
            plane += shift
        return alpha, depth, x, gap

    def _paint_interior(self, region: Any, alpha: Any, depth: Any, x: Any, gap: Any) -> None:
        """A mouth lit from the front: wet lip-coloured rims, a dark cavity that is
        darkest just under the upper lip and towards the corners, a tongue rising into
        the light from below, and upper teeth under the upper lip (fewer when the photo
        already shows teeth, which then move with the upper lip)."""
        import numpy as np

        rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
        if not rows.size:
            return
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        a, d, xs, g = alpha[box][..., None], depth[box], np.abs(x[box]), gap[box]
        below, above = d * g, (1 - d) * g  # pixels to the upper and to the lower lip
        deep, rim, flesh, white = (
            np.array(c, np.float32) * np.float32(self.light)  # float32 keeps it fast
            for c in (CAVITY_RGB, RIM_RGB, TONGUE_RGB, TEETH_RGB)
        )
        # Deeper (darker) the further from either lip, and deepest near the top.
        edge = np.exp(-np.minimum(below * 1.4, above) / (1.0 + 0.12 * g))[..., None]
        colour = deep * (0.75 + 0.25 * d[..., None]) * (1 - edge) + rim * edge
        tongue = _smooth((1 - np.hypot(xs / 0.62, (1.05 - d) / 0.55)) * 1.6)
        tongue *= _smooth((g - 0.03 * self.face_h) / (0.03 * self.face_h))  # needs room
        colour += (flesh * (0.7 + 0.3 * d)[..., None] - colour) * (tongue[..., None] * (1 - edge))
        tooth_h = max(0.045 * self.face_h - self.open0, 0.0) * (1 - 0.4 * xs**2)
        teeth = _smooth(np.minimum(tooth_h, 0.45 * g) - below + 0.5) * _smooth((0.85 - xs) * 6)
        # Gaps between teeth: a faint pixel-wide shade every 1/2.8 of the half-width.
        between = ((xs * 2.8 + 0.5) % 1 - 0.5) * (self.half_w / 2.8)
        lines = 1 - 0.12 * np.exp(-(between**2))
        shade = (1 - 0.4 * xs**2) * lines * (0.82 + 0.18 * np.clip(below / 2, 0, 1))
        colour += (white * shade[..., None] - colour) * teeth[..., None]
        colour *= (1 - 0.5 * np.clip(xs, 0, 1) ** 3)[..., None]  # corners recede
        target = region[self.band][box]
        target[:] = np.clip(target * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
