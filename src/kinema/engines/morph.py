"""First-and-last-frame video without weights: an optical-flow morph between two images.

Dense optical flow (OpenCV's DIS) is estimated both ways between the two fitted images on
small grayscale copies, checked, and upsampled. Each frame blends the two images lined up
by the flow and warps the blend to where things are at that moment, so what moves slides
into place instead of fading through a double image. Where the flow cannot be trusted
(occlusions, content entering or leaving the frame, things present in only one image) the
motion is faded out with a smooth confidence mask, which leaves a plain cross-fade there;
when the images are unrelated the whole clip is a clean cross-fade, since a flow between
unrelated pictures only tears them.

Frame 0 is the fitted first image and the last frame the fitted last image, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError
from kinema.media.people import check_person_generation
from kinema.media.pipeline import FPS, PREFETCH_FRAMES, SAMPLE_RATE, frame_count
from kinema.specs.base import FIRST_LAST_FRAME, RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]
    Field = npt.NDArray[np.float32]

# Flow is estimated with this many pixels on the short side: DIS takes ~30 ms a direction
# there on one core, and the flow of a photo is smooth enough that upsampling loses little.
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
    """Full-size flows first -> last and last -> first, each already multiplied by its
    confidence, or None when the images are too unrelated for any motion to help."""
    import cv2
    import numpy as np

    height, width = first.shape[:2]
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
    full = [
        np.asarray(
            cv2.resize(
                flow * trust[..., None] * units, (width, height), interpolation=cv2.INTER_LINEAR
            ),
            np.float32,
        )
        for flow, trust in ((forward, trust0), (backward, trust1))
    ]
    return full[0], full[1]


def render_frames(
    first: Frame, last: Frame, flows: tuple[Field, Field] | None, count: int
) -> Iterator[Frame]:
    """The `count` frames from `first` to `last` (eased). Frames are written into a ring
    of PREFETCH_FRAMES + 2 buffers, reused once that many later frames exist: enough for
    the prefetch queue, the frame being encoded and the one being drawn, since a consumer
    lets go of each frame before it asks for the next (one that keeps frames copies them)."""
    import cv2
    import numpy as np

    yield first
    if count <= 2:
        if count == 2:
            yield last
        return
    height, width = first.shape[:2]
    ring = [np.empty_like(first) for _ in range(PREFETCH_FRAMES + 2)]
    if flows is None:
        for index in range(1, count - 1):
            t = _smoothstep(index / (count - 1))
            out = ring[index % len(ring)]
            cv2.addWeighted(first, 1.0 - t, last, t, 0.0, dst=out)
            yield out
        yield last
        return
    # Four channels: OpenCV's remap is faster on RGBA than on RGB (~4 against ~6 ms a 720p
    # frame). Every per-frame array is preallocated: fresh arrays of this size cost more
    # in page faults than the arithmetic.
    rgba = [cv2.cvtColor(image, cv2.COLOR_RGB2RGBA) for image in (first, last)]
    f01 = [np.ascontiguousarray(flows[0][..., c]) for c in (0, 1)]
    f10 = [np.ascontiguousarray(flows[1][..., c]) for c in (0, 1)]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = (xs, ys)
    # Flows say where things go: pixel x of `first` is at x + F01(x) in `last`, so `last`
    # sampled at x + F01(x) is `last` lined up with `first` (and the other way round).
    # Blending in a lined-up frame first leaves one warp per frame instead of two: the
    # warp is the costly part, and the encoder is already busy on both cores. Bicubic
    # here, since these pixels are resampled once more by every frame's warp.
    lined_up = [
        cv2.remap(rgba[1 - side], xs + flow[0], ys + flow[1], cv2.INTER_CUBIC,
                  borderMode=cv2.BORDER_REPLICATE)
        for side, flow in ((0, f01), (1, f10))
    ]  # fmt: skip
    pairs = ((rgba[0], lined_up[0]), (lined_up[1], rgba[1]))
    maps = [[np.empty((height, width), np.float32) for _ in range(2)] for _ in range(2)]
    blends = [np.empty_like(rgba[0]) for _ in range(2)]
    warped = [np.empty_like(rgba[0]) for _ in range(3)]
    for index in range(1, count - 1):
        t = _smoothstep(index / (count - 1))
        # The first half is drawn in `first`'s frame, the second in `last`'s: each is exact
        # at its own end. They differ only where the flows disagree (occlusions, edges), so
        # the middle MIX of the clip blends the two rather than switching with a jump.
        mix = _smoothstep((t - 0.5 + MIX / 2) / MIX)
        sides = [side for side, weight in ((0, 1.0 - mix), (1, mix)) if weight > 0.0]
        for side in sides:
            # Frame t samples the frame-0 picture at x + Ft0(x) and the frame-1 picture
            # at x + Ft1(x), with Ft0 = -t(1-t)·F01 + t²·F10 and Ft1 = (1-t)²·F01 -
            # t(1-t)·F10 (Jiang et al., Super SloMo, 2018): backward warping with the
            # motion through time t taken as (1-t)·F01 - t·F10, symmetric in both ends.
            a, b = (-t * (1.0 - t), t * t) if side == 0 else ((1.0 - t) ** 2, -t * (1.0 - t))
            for c in (0, 1):
                cv2.addWeighted(f01[c], a, f10[c], b, 0.0, dst=maps[side][c])
                cv2.add(maps[side][c], grid[c], dst=maps[side][c])
            cv2.addWeighted(pairs[side][0], 1.0 - t, pairs[side][1], t, 0.0, dst=blends[side])
            cv2.remap(
                blends[side], maps[side][0], maps[side][1], cv2.INTER_LINEAR,
                dst=warped[side], borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
        result = warped[sides[0]]
        if len(sides) == 2:
            result = cv2.addWeighted(warped[0], 1.0 - mix, warped[1], mix, 0.0, dst=warped[2])
        out = ring[index % len(ring)]
        cv2.cvtColor(result, cv2.COLOR_RGBA2RGB, dst=out)
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
        from kinema.media.ambience import room_tone
        from kinema.media.images import fit_image
        from kinema.media.pipeline import decode_input, encode, fitted_input

        if request.image is None or request.last_image is None:
            raise EngineError("The morph engine needs both a first and a last image.")
        # The first image sets the shape of the video; the last one is fitted to it.
        first = fitted_input(ctx, request.image, request)
        height, width = first.shape[:2]
        ctx.check_cancelled()
        last = fit_image(decode_input(ctx, request.last_image, request), width, height)
        check_person_generation(
            request, [(request.image.field, first), (request.last_image.field, last)]
        )
        ctx.check_cancelled()
        count = frame_count(request.duration)
        flows = estimate_flows(first, last) if count > 2 else None
        ctx.check_cancelled()
        audio = None
        if request.generate_audio:
            # Quiet room tone (kinema.media.ambience): an honest ambience bed under the
            # picture, not sound generated from it; the same request gives the same track.
            seed = ROOM_TONE_SEED if request.seed is None else request.seed
            audio = room_tone(count * SAMPLE_RATE // FPS, SAMPLE_RATE, seed)
        encode(ctx, render_frames(first, last, flows, count), count, width, height, audio)
