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
import random
import re
from typing import ClassVar

from pydantic import Field

from kinema.engines.base import Context, Engine, EngineOptions
from kinema.errors import EngineError
from kinema.media.camera import (
    GENTLE_MOVES,
    MOVES,
    PAN_LEFT,
    PAN_RIGHT,
    ROLL,
    STATIC,
    TILT_DOWN,
    TILT_UP,
    ZOOM_IN,
    ZOOM_OUT,
    Move,
    affine,
    camera,
    render_frames,
)
from kinema.media.people import check_person_generation
from kinema.media.pipeline import FPS, SAMPLE_RATE
from kinema.render_request import IMAGE_TO_VIDEO, RenderRequest

__all__ = [
    "GENTLE_MOVES", "MOVES", "PAN_LEFT", "PAN_RIGHT", "ROLL", "STATIC", "TILT_DOWN", "TILT_UP",
    "ZOOM_IN", "ZOOM_OUT", "MotionEngine", "MotionOptions", "Move", "affine", "camera",
    "choose_move", "render_frames", "request_seed",
]  # fmt: skip

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


class MotionOptions(EngineOptions):
    fps: int = Field(default=FPS, ge=1, le=60, description="Frames per second of the clips.")
    default_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Length when a request leaves it open."
    )


class MotionEngine(Engine):
    name: ClassVar[str] = "motion"
    capabilities: ClassVar[frozenset[str]] = frozenset({IMAGE_TO_VIDEO})
    Options = MotionOptions
    requires = ("av", "cv2", "numpy", "PIL")
    options: MotionOptions

    def load(self) -> None:
        # Import the media stack once per worker, not on the first job's clock.
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy  # noqa: F401
        from PIL import Image  # noqa: F401

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.ambience import room_tone
        from kinema.media.pipeline import encode, fitted_input
        from kinema.media.styles import STYLES, stylize

        if request.image is None:
            raise EngineError("The motion engine animates an input image, and none was given.")
        if request.style is not None and request.style not in STYLES:
            raise EngineError(
                f"The motion engine has no style {request.style!r} (it has {', '.join(STYLES)})."
            )
        fitted = fitted_input(ctx, request.image, request)
        height, width = fitted.shape[:2]
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
        fps = self.options.fps
        count = max(1, round((request.duration or self.options.default_seconds) * fps))
        move = choose_move(request.prompt, request.negative_prompt, request.seed)
        # Room tone, not generated sound: a quiet, seeded ambience bed, so clients that
        # ask for audio get a track that sounds like location sound rather than a
        # dropout. Scene sound (dialogue, effects) needs an engine that generates it.
        samples = count * SAMPLE_RATE // fps
        audio = room_tone(samples, SAMPLE_RATE, seed) if request.generate_audio else None
        frames = render_frames(fitted, move, count)
        encode(ctx, frames, count, width, height, audio, fps=fps)
