"""Talking head: the person in an image speaks an audio track (`veed/fabric-1.0`).

No generative model: the face is found with MediaPipe's detector and 468-point mesh
(`kinema.media.faces`), and `kinema.media.face_anim` warps that one photo per frame: the
jaw and lips follow the audio's loudness and brightness, the eyes blink and the head
moves a little. The clip lasts exactly as long as the audio, which is muxed as AAC.

Finding the face takes ~10 ms; animating a frame 1-3 ms at 720p-1080p (only the head's
region is remapped), on a background thread so it overlaps x264 (OpenCV releases the
GIL): a 5 s clip takes ~1.2x a plain PyAV encode of its frames (`bench/talking_head.py`).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError
from kinema.media.pipeline import FPS, SAMPLE_RATE
from kinema.render_request import TALKING_HEAD, RenderRequest


class TalkingHeadEngine(Engine):
    name: ClassVar[str] = "talking_head"
    capabilities: ClassVar[frozenset[str]] = frozenset({TALKING_HEAD})
    requires = ("av", "cv2", "numpy", "PIL")

    def unavailable(self) -> str | None:
        from kinema.media.face_models import model_missing

        return super().unavailable() or model_missing()

    def load(self) -> None:
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy  # noqa: F401
        from PIL import Image  # noqa: F401

        from kinema.media.face_models import preload

        # Loads the face models now, not on the first job's clock. If that fails, the
        # registry disables this engine only; the worker serves its other engines.
        preload()

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.audio import decode_audio
        from kinema.media.face_anim import FaceAnimator, mouth_track_from_audio
        from kinema.media.face_models import release_models
        from kinema.media.faces import largest_face
        from kinema.media.pipeline import encode, fitted_input

        if request.image is None or request.audio is None:
            raise EngineError("The talking-head engine needs an image and an audio track.")
        fitted = fitted_input(ctx, request.image, request)
        height, width = fitted.shape[:2]
        audio_data = ctx.fetch(request.audio)
        samples = decode_audio(
            audio_data, request.audio.field, request.max_audio_seconds, SAMPLE_RATE
        )
        del audio_data
        ctx.check_cancelled()
        face = largest_face(fitted)
        # The face models' work is done: their memory goes to x264 instead (faces.py).
        release_models()
        if face is None:
            raise EngineError(f"Could not detect a face in {request.image.field}", "FaceNotFound")
        ctx.check_cancelled()
        count = max(1, round(samples.size / SAMPLE_RATE * FPS))
        track = mouth_track_from_audio(samples, SAMPLE_RATE, count, FPS)
        # Without a seed the same inputs still give the same blinks and head motion.
        seed = request.seed
        if seed is None:
            seed = int.from_bytes(hashlib.sha256(fitted.tobytes()).digest()[:4], "big")
        animator = FaceAnimator(fitted, face, seed=seed)

        encode(ctx, animator.frames(track), count, width, height, samples)
