"""First-and-last-frame video without weights: an optical-flow morph between two images.

Dense optical flow (OpenCV's DIS) is estimated both ways between the two fitted images on
small grayscale copies, checked, and upsampled. Each frame blends the two images lined up
by the flow and warps the blend to where things are at that moment, so what moves slides
into place instead of fading through a double image. Where the flow cannot be trusted
(occlusions, content entering or leaving the frame, things present in only one image) the
motion is faded out with a smooth confidence mask, which leaves a plain cross-fade there;
when the images are unrelated the whole clip is a clean cross-fade, since a flow between
unrelated pictures only tears them.

Frame 0 is the fitted first image and the last frame the fitted last image, bit for bit
(when no words are spoken over them). With `generate_audio`, words the prompt quotes are
spoken and lip-synced on the face in each frame (`kinema.media.soundtrack`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError
from kinema.media.people import check_person_generation
from kinema.media.pipeline import RING_FRAMES, frame_count
from kinema.render_request import FIRST_LAST_FRAME, RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]
    Field = npt.NDArray[np.float32]

# Flow is estimated with at most this many pixels on the short side (see estimate_flows):
# DIS takes ~30 ms a direction there on one core, and the flow of a photo is smooth enough
# that upsampling loses little.
FLOW_SHORT_SIDE = 360
# Forward-backward check (Sundaram et al. 2010, softened): a round trip may miss by
# FB_RELATIVE of the squared motion plus FB_ABSOLUTE px² (in flow pixels) and be trusted.
FB_RELATIVE, FB_ABSOLUTE = 0.02, 1.0
# Photometric check: gray levels of difference between a pixel and where its flow lands,
# fully trusted up to the first value and not at all from the second on.
PHOTO_GOOD, PHOTO_BAD = 18.0, 42.0
# Share of the textured image the flow must explain: below the first the clip is a plain
# cross-fade, above the second the full morph; in between, the motion is scaled down.
SHARE_NONE, SHARE_FULL = 0.3, 0.5
# The span of (eased) time around the middle over which the two halves are blended.
MIX = 0.3
# Pixels of a frame warped at a time (see render_frames): strips this size stay in the
# CPU caches through a frame's passes, which makes up for the extra OpenCV calls, and
# the strip buffers (~2.5 MB in all) do not grow with the picture. 1 << 17 was no
# faster (1080p, 2 cores) and held 2.5 MB more.
STRIP_PIXELS = 1 << 16
# remap's second map, absent when the first holds (x, y) pairs (OpenCV's type hints want it).
NO_MAP: Any = None
ROOM_TONE_SEED = 0x6B696E656D61  # for the room tone of requests without a seed


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _confidence(a: Frame, b: Frame, ab: Field, ba: Field) -> tuple[Field, float]:
    """How far the flow `ab` (from gray image `a` to `b`) can be trusted at each pixel of
    `a`, in [0, 1] and smooth, and the share of `a`'s texture it is trusted over."""
    import cv2
    import numpy as np

    height, width = a.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    land_x, land_y = xs + ab[..., 0], ys + ab[..., 1]
    # Where each pixel lands in `b`, the reverse flow should bring it back home.
    back = cv2.remap(ba, land_x, land_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    miss = np.sum((ab + back) ** 2, axis=2)
    tolerance = FB_RELATIVE * (np.sum(ab**2, axis=2) + np.sum(back**2, axis=2)) + FB_ABSOLUTE
    consistent = np.clip(2.0 - miss / tolerance, 0.0, 1.0)
    # ...and look alike there (slightly blurred: bilinear resampling softens edges), once
    # `b` has `a`'s overall brightness and contrast: an exposure change is no reason to
    # distrust a flow that DIS, which normalises its patches, found anyway.
    soft_a = cv2.GaussianBlur(a, (0, 0), 1.2).astype(np.float32)
    soft_b = cv2.GaussianBlur(b, (0, 0), 1.2).astype(np.float32)
    soft_b = (soft_b - soft_b.mean()) * (soft_a.std() / max(float(soft_b.std()), 1.0))
    soft_b += soft_a.mean()
    landed = cv2.remap(soft_b, land_x, land_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = np.abs(soft_a - landed)
    alike = np.clip((PHOTO_BAD - error) / (PHOTO_BAD - PHOTO_GOOD), 0.0, 1.0)
    # Pixels that leave the frame have no partner at all (the edge strip of a pan).
    inside = (land_x >= 0) & (land_x <= width - 1) & (land_y >= 0) & (land_y <= height - 1)
    trust = (consistent * alike * inside).astype(np.float32)
    # Shrink, then feather: a soft edge between morph and cross-fade does not show, and
    # shrinking first keeps a wrong vector next to a trusted region from being used.
    radius = max(1, round(min(height, width) / 120))
    trust = cv2.erode(trust, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    trust = cv2.GaussianBlur(trust, (0, 0), 2.0 * radius)
    # Flat areas say nothing either way (any flow fits them): weigh pixels by texture.
    texture = cv2.magnitude(
        cv2.Sobel(soft_a, cv2.CV_32F, 1, 0), cv2.Sobel(soft_a, cv2.CV_32F, 0, 1)
    )
    share = float(np.sum(trust * texture) / max(float(np.sum(texture)), 1e-6))
    return trust.astype(np.float32, copy=False), share


def estimate_flows(first: Frame, last: Frame) -> tuple[Field, Field] | None:
    """Flows first -> last and last -> first at the analysis size (FLOW_SHORT_SIDE on
    the short side, or the images' own size when smaller), in output pixels and already
    multiplied by their confidence; None when the images are too unrelated for any
    motion to help. `render_frames` upsamples them a strip at a time: two full-size
    flows would be 33 MB at 1080p, held for the whole clip."""
    import cv2
    import numpy as np

    height, width = first.shape[:2]
    # The largest whole fraction of the output at most FLOW_SHORT_SIDE on its short side
    # (1080p: 1/3, 720p and 480p: 1/2) where it divides the size, which `render_frames`
    # upsamples with cheap band resizes; otherwise FLOW_SHORT_SIDE on the short side. At
    # 480p, half size holds the flows and this frame's motion in 2.5 MB instead of 10,
    # and the morph's midway frame is as close to the true one (29.1 dB both ways on the
    # astronaut pair of tests/test_morph.py, rendered at 480p).
    factor = max(1, math.ceil(min(height, width) / FLOW_SHORT_SIDE))
    if width % factor == 0 and height % factor == 0:
        size = (width // factor, height // factor)
    else:
        scale = min(1.0, FLOW_SHORT_SIDE / min(height, width))
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
    gray = [
        cv2.cvtColor(
            cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
        ).astype(np.uint8, copy=False)
        for image in (first, last)
    ]
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    blank = np.zeros((size[1], size[0], 2), np.float32)  # an output: no initial flow is used
    forward = np.asarray(dis.calc(gray[0], gray[1], blank.copy()), np.float32)
    backward = np.asarray(dis.calc(gray[1], gray[0], blank), np.float32)
    trust0, share0 = _confidence(gray[0], gray[1], forward, backward)
    trust1, share1 = _confidence(gray[1], gray[0], backward, forward)
    # Both directions must hold: a flow that explains one image but not the other is what
    # an unrelated pair with some flat areas looks like.
    amount = (min(share0, share1) - SHARE_NONE) / (SHARE_FULL - SHARE_NONE)
    amount = min(max(amount, 0.0), 1.0)
    if amount == 0.0:
        return None
    # Flow vectors are in small-image pixels: scale them to the output's.
    units = np.array([width / size[0], height / size[1]], np.float32) * amount
    forward *= trust0[..., None] * units
    backward *= trust1[..., None] * units
    return forward, backward


def _upsampler(small: tuple[int, int], width: int, height: int) -> Any:
    """`up(field, top, rows, dst)`: rows top..top+rows of `field` (sized `small`, (h, w))
    bilinearly upsampled to `width` x `height`, sampled where cv2.resize samples (pixel
    centres), so that any split into strips gives the same values: a view of `field`
    when it is full-size, else the rows of a resize of just the source rows they need
    (when the size is a whole multiple: ~1 ms a 720p frame), else written into `dst`
    by a remap (~4.5 ms)."""
    import cv2
    import numpy as np

    if small == (height, width):

        def same(field: Field, top: int, rows: int, dst: Field) -> Field:
            return field[top : top + rows]

        return same
    strip_rows = max(8, STRIP_PIXELS // width)
    factor = height // small[0]
    if small[0] * factor == height and small[1] * factor == width:
        # Output row y samples source row (y + 0.5) / factor - 0.5: a band from one source
        # row above the strip's to one below resizes to the same values there (the
        # band's own edges, clamped, fall outside the strip).
        scratch = np.empty((strip_rows + 4 * factor, width, 2), np.float32)

        def band(field: Field, top: int, rows: int, dst: Field) -> Field:
            first = max(0, top // factor - 1)
            end = min(small[0], (top + rows - 1) // factor + 2)
            out = scratch[: (end - first) * factor]
            cv2.resize(field[first:end], (width, out.shape[0]), dst=out,
                       interpolation=cv2.INTER_LINEAR)  # fmt: skip
            skip = top - first * factor
            return out[skip : skip + rows]

        return band
    where = np.empty((strip_rows, width, 2), np.float32)
    where[..., 0] = (np.arange(width, dtype=np.float32) + 0.5) * (small[1] / width) - 0.5
    source_rows = (np.arange(height, dtype=np.float32) + 0.5) * (small[0] / height) - 0.5

    def remap(field: Field, top: int, rows: int, dst: Field) -> Field:
        where[:rows, :, 1] = source_rows[top : top + rows, None]
        cv2.remap(field, where[:rows], NO_MAP, cv2.INTER_LINEAR, dst=dst,
                  borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        return dst

    return remap


def render_frames(
    first: Frame, last: Frame, flows: tuple[Field, Field] | None, count: int
) -> Iterator[Frame]:
    """The `count` frames from `first` to `last` (eased). Frames are written into a ring
    of RING_FRAMES buffers, reused once that many later frames exist: enough for the
    prefetch queue, the frame being encoded and the one being drawn, since a consumer
    lets go of each frame before it asks for the next (one that keeps frames copies them).
    `flows` are `estimate_flows`'s, at the analysis size. Each frame is warped a strip of
    about STRIP_PIXELS pixels at a time, so its maps, upsampled flows, warps and pixel
    grid take a strip's memory, not a frame's (identical pixels: every step is per
    pixel)."""
    import cv2
    import numpy as np

    yield first
    if count <= 2:
        if count == 2:
            yield last
        return
    height, width = first.shape[:2]
    ring = [np.empty_like(first) for _ in range(min(RING_FRAMES, count - 2))]
    if flows is None:
        for index in range(1, count - 1):
            t = _smoothstep(index / (count - 1))
            out = ring[index % len(ring)]
            cv2.addWeighted(first, 1.0 - t, last, t, 0.0, dst=out)
            yield out
        yield last
        return
    # Every per-frame array is preallocated: fresh arrays of this size cost more in page
    # faults than the arithmetic. Flows and maps stay interleaved (x, y), as remap takes
    # them. The flows stay at their analysis size (see estimate_flows); each strip's part
    # is upsampled when it is needed, into a strip-sized buffer.
    f01, f10 = flows
    up = _upsampler(f01.shape[:2], width, height)
    # The pixel grid (x, y) of one strip: y is moved to each strip's rows in turn (whole
    # numbers, so exactly), instead of holding a grid of the whole frame.
    strip_rows = max(8, STRIP_PIXELS // width)
    grid = np.empty((strip_rows, width, 2), np.float32)
    grid[..., 0] = np.arange(width, dtype=np.float32)
    rows_of = np.arange(strip_rows, dtype=np.float32)[:, None]  # y within a strip
    strips = [(top, min(top + strip_rows, height)) for top in range(0, height, strip_rows)]

    def strip_grid(top: int, rows: int) -> Field:
        np.add(rows_of[:rows], np.float32(top), out=grid[:rows, :, 1])
        return grid[:rows]

    # Flows say where things go: pixel x of `first` is at x + F01(x) in `last`, so `last`
    # sampled at x + F01(x) is `last` lined up with `first` (and the other way round).
    # Blending in a lined-up frame first leaves one warp per frame instead of two: the
    # warp is the costly part, and the encoder is already busy on both cores. Bicubic
    # here, since these pixels are resampled once more by every frame's warp.
    lined_up = [np.empty_like(first) for _ in range(2)]
    maps = np.empty((strip_rows, width, 2), np.float32)  # one strip's sampling points
    for top, bottom in strips:
        rows = bottom - top
        here = strip_grid(top, rows)
        for side, flow in ((0, f01), (1, f10)):
            strip_map = maps[:rows]
            cv2.add(up(flow, top, rows, strip_map), here, dst=strip_map)
            cv2.remap((first, last)[1 - side], strip_map, NO_MAP,
                      cv2.INTER_CUBIC, dst=lined_up[side][top:bottom],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    # The pictures stay RGB (the inputs themselves and their lined-up partners); each
    # frame's blend, which the warp reads from anywhere, is RGBA: OpenCV's remap is
    # faster on four channels than on three (~4 against ~6 ms a 720p frame). Blending a
    # strip at a time into RGBA keeps no RGBA copy of the pictures (17 MB at 1080p), and
    # the two sides take turns in one blend buffer: the first side's warp goes straight
    # into the output frame, the second's is mixed into it strip by strip.
    pairs = ((first, lined_up[0]), (lined_up[1], last))
    motion = np.empty_like(f01)  # this frame's flow for one side, analysis size
    blend = np.empty((height, width, 4), np.uint8)
    mixed = np.empty((strip_rows, width, 3), np.uint8)
    warped = np.empty((strip_rows, width, 4), np.uint8)
    for index in range(1, count - 1):
        t = _smoothstep(index / (count - 1))
        # The first half is drawn in `first`'s frame, the second in `last`'s: each is exact
        # at its own end. They differ only where the flows disagree (occlusions, edges), so
        # the middle MIX of the clip blends the two rather than switching with a jump.
        mix = _smoothstep((t - 0.5 + MIX / 2) / MIX)
        sides = [(side, w) for side, w in ((0, 1.0 - mix), (1, mix)) if w > 0.0]
        out = ring[index % len(ring)]
        for turn, (side, weight) in enumerate(sides):
            for top, bottom in strips:
                rows = bottom - top
                cv2.addWeighted(pairs[side][0][top:bottom], 1.0 - t, pairs[side][1][top:bottom],
                                t, 0.0, dst=mixed[:rows])  # fmt: skip
                cv2.cvtColor(mixed[:rows], cv2.COLOR_RGB2RGBA, dst=blend[top:bottom])
            # Frame t samples the frame-0 picture at x + Ft0(x) and the frame-1 picture at
            # x + Ft1(x), with Ft0 = -t(1-t)·F01 + t²·F10 and Ft1 = (1-t)²·F01 - t(1-t)·F10
            # (Jiang et al., Super SloMo, 2018): backward warping with the motion through
            # time t taken as (1-t)·F01 - t·F10, symmetric in both ends. Combined at the
            # analysis size: upsampling is linear, so it commutes with the combination.
            a, b = (-t * (1.0 - t), t * t) if side == 0 else ((1.0 - t) ** 2, -t * (1.0 - t))
            cv2.addWeighted(f01, a, f10, b, 0.0, dst=motion)
            for top, bottom in strips:
                rows = bottom - top
                here = strip_grid(top, rows)
                strip_map = maps[:rows]
                cv2.add(up(motion, top, rows, strip_map), here, dst=strip_map)
                cv2.remap(
                    blend, strip_map, NO_MAP, cv2.INTER_LINEAR,
                    dst=warped[:rows], borderMode=cv2.BORDER_REPLICATE,
                )  # fmt: skip
                if turn == 0:
                    cv2.cvtColor(warped[:rows], cv2.COLOR_RGBA2RGB, dst=out[top:bottom])
                else:  # the same sums as mixing the two RGBA strips, channel by channel
                    cv2.cvtColor(warped[:rows], cv2.COLOR_RGBA2RGB, dst=mixed[:rows])
                    cv2.addWeighted(out[top:bottom], 1.0 - weight, mixed[:rows], weight, 0.0,
                                    dst=out[top:bottom])  # fmt: skip
        yield out
    yield last


class MorphEngine(Engine):
    name: ClassVar[str] = "morph"
    capabilities: ClassVar[frozenset[str]] = frozenset({FIRST_LAST_FRAME})
    requires = ("av", "cv2", "numpy", "PIL")

    def load(self) -> None:
        # Import the media stack once per worker, not on the first job's clock.
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy  # noqa: F401
        from PIL import Image  # noqa: F401

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.pipeline import encode, fitted_pair
        from kinema.media.soundtrack import lip_sync, plan_sound

        if request.image is None or request.last_image is None:
            raise EngineError("The morph engine needs both a first and a last image.")
        count = frame_count(request.duration)
        # The sound first: words quoted in the prompt (Veo's `says: 'Not today'`) are
        # spoken over room tone, and speech too long for the clip is refused before any
        # download. Without quoted words it is the quiet room tone alone
        # (kinema.media.ambience); the same request gives the same track.
        seed = ROOM_TONE_SEED if request.seed is None else request.seed
        sound = plan_sound(request, count, seed)
        # The first image sets the shape of the video; both are fitted through one window.
        first, last = fitted_pair(ctx, request)
        height, width = first.shape[:2]
        check_person_generation(
            request, [(request.image.field, first), (request.last_image.field, last)]
        )
        ctx.check_cancelled()
        flows = estimate_flows(first, last) if count > 2 else None
        ctx.check_cancelled()
        frames = render_frames(first, last, flows, count)
        if sound is not None and sound.mouth is not None:
            # The mouth of the face, tracked through the morph, says the words.
            frames = lip_sync(frames, sound.mouth, sound.seed)
        audio = None if sound is None else sound.samples
        encode(ctx, frames, count, width, height, audio)
