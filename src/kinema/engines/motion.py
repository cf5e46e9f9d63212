"""The default local engine: animate the input image with an eased camera move.

No model weights, only a 2-D affine "camera" over the fitted image, so it runs anywhere on
CPU at close to the speed of the H.264 encoder. The move comes from words in the prompt
("zoom in", "pan left", "static"...), minus the ones the negative prompt names; without
any, it is a gentle move drawn from the seed, so one request always gives the same video.

Every move starts at the identity (frame 0 is exactly the input image, as image-to-video
models promise) and zooms in enough that pans, tilts and rolls never show an edge. Zooming
*out* from the full image has to show more than the image holds: that margin is the image
mirrored at its edges and blurred progressively, and the move stays small; it is only
used when asked for, never drawn at random.

A `style` (anime, clay...) is painted once onto the fitted image before the move, and
frame 0 is then that styled image. `generate_audio` adds quiet room tone, never sound
that claims to come from the scene.
"""

from __future__ import annotations

import hashlib
import math
import queue
import random
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError
from kinema.media.people import check_person_generation
from kinema.specs.base import IMAGE_TO_VIDEO, RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

FPS = 25
DEFAULT_SECONDS = 5.0
SAMPLE_RATE = 48000
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
PREFETCH_FRAMES = 4  # warped frames waiting for the encoder (4 x 2.7 MB at 720p)

ZOOM_IN, ZOOM_OUT, STATIC, ROLL = "zoom_in", "zoom_out", "static", "roll"
PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN = "pan_left", "pan_right", "tilt_up", "tilt_down"
MOVES = (ZOOM_IN, ZOOM_OUT, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN, ROLL)
# Drawn when the prompt names no move: the ones that never show synthesised margins.
GENTLE_MOVES = (ZOOM_IN, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN, ROLL)

_S = r"(?:s|es|ed|ing)?"  # verb endings: "zooms", "pushes", "tilted"...
_PAN = r"pan(?:s|ned|ning)?"
# (pattern, the move it asks for in the prompt (None: only meaningful in a negative
# prompt), the moves it forbids in the negative prompt). Bare words carry a look-ahead
# so "pan" never matches inside "pan left": a bare "pan" asks for a pan right, and in a
# negative prompt forbids both pans.
_RULES: tuple[tuple[str, str | None, frozenset[str]], ...] = tuple(
    (pattern, move, frozenset(forbids))
    for pattern, move, forbids in (
        (rf"\bzoom{_S}\s+in(?:to)?\b", ZOOM_IN, {ZOOM_IN}),
        (rf"\bpush{_S}\s+in(?:to)?\b", ZOOM_IN, {ZOOM_IN}),
        (rf"\bdolly{_S}\s+in\b", ZOOM_IN, {ZOOM_IN}),
        (rf"\bzoom{_S}\s+out\b", ZOOM_OUT, {ZOOM_OUT}),
        (rf"\bpull{_S}\s+(?:back|out)\b", ZOOM_OUT, {ZOOM_OUT}),
        (rf"\bdolly{_S}\s+out\b", ZOOM_OUT, {ZOOM_OUT}),
        (rf"\b{_PAN}\s+(?:to\s+the\s+)?left\b", PAN_LEFT, {PAN_LEFT}),
        (rf"\b{_PAN}\s+(?:to\s+the\s+)?right\b", PAN_RIGHT, {PAN_RIGHT}),
        (rf"\btilt{_S}\s+up(?:wards?)?\b", TILT_UP, {TILT_UP}),
        (rf"\btilt{_S}\s+down(?:wards?)?\b", TILT_DOWN, {TILT_DOWN}),
        (rf"\bzoom{_S}\b(?!\s+(?:in|into|out)\b)", ZOOM_IN, {ZOOM_IN, ZOOM_OUT}),
        (rf"\bdolly{_S}\b(?!\s+(?:in|out)\b)", ZOOM_IN, {ZOOM_IN, ZOOM_OUT}),
        (rf"\bpush{_S}\b(?!\s+in(?:to)?\b)", ZOOM_IN, {ZOOM_IN}),
        (rf"\bpull{_S}\b(?!\s+(?:back|out)\b)", ZOOM_OUT, {ZOOM_OUT}),
        (rf"\b{_PAN}\b(?!\s+(?:to\s+the\s+)?(?:left|right)\b)", PAN_RIGHT, {PAN_LEFT, PAN_RIGHT}),
        (rf"\btilt{_S}\b(?!\s+(?:up|down)(?:wards?)?\b)", TILT_UP, {TILT_UP, TILT_DOWN}),
        (rf"\b(?:roll|orbit){_S}\b|\brotat(?:e|es|ed|ing|ion)\b", ROLL, {ROLL}),
        (r"\bno\s+camera\s+(?:movement|motion)\b", STATIC, set()),
        (r"\b(?:static|still|tripod)\b", STATIC, {STATIC}),
        (r"\bcamera\s+(?:movement|motion|moves?)\b", None, set(MOVES)),
    )
)


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


def request_seed(prompt: str, negative_prompt: str | None, seed: int | None) -> int:
    """The request's seed, or without one a hash of its prompts, so the same request
    always gets the same move, style and room tone."""
    if seed is not None:
        return seed
    digest = hashlib.sha256(f"{prompt}\0{negative_prompt or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def choose_move(prompt: str, negative_prompt: str | None, seed: int | None) -> Move:
    """The move a request asks for: the earliest move word in the prompt that the
    negative prompt does not forbid, else one drawn from the seed (see request_seed)."""
    text, negative = prompt.lower(), (negative_prompt or "").lower()
    forbidden: set[str] = set()
    for pattern, _, forbids in _RULES:
        if re.search(pattern, negative):
            forbidden |= forbids
    rng = random.Random(request_seed(prompt, negative_prompt, seed))
    asked = sorted(
        (match.start(), index, move)
        for index, (pattern, move, _) in enumerate(_RULES)
        for match in re.finditer(pattern, text)
        if move is not None and move not in forbidden
    )
    if asked:
        kind = asked[0][2]
    else:
        allowed = [move for move in GENTLE_MOVES if move not in forbidden]
        kind = rng.choice(allowed) if allowed else STATIC
    if kind in (ZOOM_IN, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN):
        return Move(kind, amount=rng.uniform(0.15, 0.22))
    if kind == ZOOM_OUT:
        return Move(kind, amount=rng.uniform(0.08, 0.12))
    if kind == ROLL:
        return Move(kind, amount=rng.uniform(2.5, 4.0), direction=rng.choice((-1, 1)))
    return Move(STATIC)


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

    padded = cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=max(2.0, margin / 4))
    height, width = image.shape[:2]
    ys = np.abs(np.arange(height + 2 * margin) - (margin + (height - 1) / 2)) - (height - 1) / 2
    xs = np.abs(np.arange(width + 2 * margin) - (margin + (width - 1) / 2)) - (width - 1) / 2
    outside = np.maximum(np.maximum(ys, 0)[:, None], np.maximum(xs, 0)[None, :])
    weight = np.clip(outside / (margin / 2), 0.0, 1.0)[:, :, None].astype(np.float32)
    mixed = padded * (1.0 - weight) + blurred * weight
    extended: Frame = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return extended


def render_frames(image: Frame, move: Move, count: int) -> Iterator[Frame]:
    """The `count` frames of `move` over the fitted `image`; frame 0 is `image` itself."""
    import cv2
    import numpy as np

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
    for index in range(1, count):
        matrix = affine(*camera(move, index / (count - 1), width, height), width, height, margin)
        frame = cv2.warpAffine(
            source, matrix, (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
        yield frame.astype(np.uint8, copy=False)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(frames: Iterator[Frame], depth: int) -> Generator[Frame, None, None]:
    """Produce `frames` on a background thread, at most `depth` ahead: OpenCV warps
    without the GIL, so the next frames are warped while x264 encodes this one."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(_DONE)
        except BaseException as error:
            put(_Failed(error))

    worker = threading.Thread(target=produce, name="motion-frames", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


class MotionEngine(Engine):
    name: ClassVar[str] = "motion"
    capabilities: ClassVar[frozenset[str]] = frozenset({IMAGE_TO_VIDEO})

    def load(self) -> None:
        # Import the media stack once per worker, not on the first job's clock.
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy  # noqa: F401
        from PIL import Image  # noqa: F401

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.ambience import room_tone
        from kinema.media.encode import write_mp4
        from kinema.media.images import decode_image, fit_image, output_size
        from kinema.media.styles import STYLES, stylize

        if request.image is None:
            raise EngineError("The motion engine animates an input image, and none was given.")
        if request.style is not None and request.style not in STYLES:
            raise EngineError(
                f"The motion engine has no style {request.style!r} (it has {', '.join(STYLES)})."
            )
        data = ctx.fetch(request.image)
        rgb = decode_image(
            data,
            request.image.field,
            request.image_rules,
            getattr(ctx, "max_image_pixels", DEFAULT_MAX_PIXELS),
            getattr(ctx, "max_input_bytes", DEFAULT_MAX_BYTES),
        )
        width, height = output_size(
            request.short_side, request.aspect, request.aspect_choices, rgb.shape[1], rgb.shape[0]
        )
        fitted = fit_image(rgb, width, height)
        del rgb, data
        check_person_generation(request, [(request.image.field, fitted)])
        ctx.check_cancelled()
        seed = request_seed(request.prompt, request.negative_prompt, request.seed)
        if request.style is not None:
            # Styled once, before the move: every frame is then a warp of this one
            # still, so the look is temporally stable by construction. A per-frame
            # filter would re-decide its lines, palette and dots on every frame, and
            # they would boil and flicker. Frame 0 is the styled fitted image.
            fitted = stylize(fitted, request.style, seed)
            ctx.check_cancelled()
        count = max(1, round((request.duration or DEFAULT_SECONDS) * FPS))
        move = choose_move(request.prompt, request.negative_prompt, request.seed)
        # Room tone, not generated sound: a quiet, seeded ambience bed, so clients that
        # ask for audio get a track that sounds like location sound rather than a
        # dropout. Scene sound (dialogue, effects) needs an engine that generates it.
        samples = count * SAMPLE_RATE // FPS
        audio = room_tone(samples, SAMPLE_RATE, seed) if request.generate_audio else None

        def on_frame(written: int) -> None:
            ctx.check_cancelled()
            ctx.progress(written / count)

        frames = prefetch(render_frames(fitted, move, count), PREFETCH_FRAMES)
        try:
            write_mp4(
                ctx.output_path, frames, fps=FPS, width=width, height=height,
                audio=audio, sample_rate=SAMPLE_RATE, on_frame=on_frame,
            )  # fmt: skip
        finally:
            frames.close()  # stops the warping thread when the encode ends early
