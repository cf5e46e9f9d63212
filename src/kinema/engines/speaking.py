"""A face in a still image says a text: speech synthesis + lip-synced face animation.

Serves pixverse's `lip_sync_tts_content` (LIP_SYNC_TTS) and Veo prompts that quote what
someone says (DIALOGUE). The text is spoken by eSpeak NG in one of the documented voices
(`kinema.media.speech`); its phoneme timings become a mouth track (`kinema.media.visemes`)
that `FaceAnimator` applies to the largest face in the fitted image, frame by frame. The
speech starts `SPEECH_LEAD_IN_SECONDS` into the clip, as a person draws breath before
talking; the rest of the clip is the animator's idle motion with the mouth closed. The
audio is the speech at 48 kHz, placed at the same offset and muxed as AAC.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError, InputError
from kinema.media.audio import resample
from kinema.media.people import check_person_generation
from kinema.media.pipeline import FPS, SAMPLE_RATE
from kinema.render_request import DIALOGUE, LIP_SYNC_TTS, SPEECH_LEAD_IN_SECONDS, RenderRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import numpy.typing as npt

    from kinema.media.faces import Face
    from kinema.media.speech import Speech

    Frame = npt.NDArray[np.uint8]

TAIL_SECONDS = 0.5  # after the speech, when the request leaves the length to the audio
VOICE_OVER_ZOOM = 0.06  # the slow push-in on an image without a face


def soundtrack(speech: Speech, start: float, count: int) -> npt.NDArray[np.float32]:
    """The clip's audio: silence, the speech from `start` seconds, silence to the end of
    `count` frames."""
    import numpy as np

    total = count * SAMPLE_RATE // FPS
    audio = np.zeros(total, np.float32)
    voice = resample(speech.samples, speech.sample_rate, SAMPLE_RATE)
    offset = round(start * SAMPLE_RATE)
    n = max(0, min(voice.size, total - offset))
    audio[offset : offset + n] = voice[:n]
    return audio


def _seed(request: RenderRequest, text: str) -> int:
    if request.seed is not None:
        return request.seed
    digest = hashlib.sha256(f"{request.prompt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _talking_frames(
    fitted: Frame, face: Face, seed: int, speech: Speech, lead_in: float, count: int
) -> Iterator[Frame]:
    from kinema.media.face_anim import FaceAnimator, with_loudness
    from kinema.media.speech import PhonemeEvent
    from kinema.media.visemes import mouth_track_from_phonemes

    shifted = [PhonemeEvent(event.start + lead_in, event.phoneme) for event in speech.phonemes]
    track = mouth_track_from_phonemes(shifted, lead_in + speech.seconds, count, FPS)
    track = with_loudness(track, soundtrack(speech, lead_in, count), SAMPLE_RATE, FPS)
    animator = FaceAnimator(fitted, face, seed)
    return iter(animator.frames(track))


class SpeakingEngine(Engine):
    name: ClassVar[str] = "speaking"
    capabilities: ClassVar[frozenset[str]] = frozenset({LIP_SYNC_TTS, DIALOGUE})
    requires = ("av", "cv2", "numpy", "PIL", "espeakng_loader")

    def unavailable(self) -> str | None:
        from kinema.media.face_models import model_missing

        return super().unavailable() or model_missing()

    def load(self) -> None:
        # The media stack, the face models and the speech library, once per worker, so
        # the first job does not pay for them.
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy as np

        from kinema.media import face_anim  # noqa: F401
        from kinema.media.faces import largest_face
        from kinema.media.speech import speech_seconds

        largest_face(np.zeros((128, 128, 3), np.uint8))
        speech_seconds("Ready.", "Ava")
        resample(np.zeros(256, np.float32), 22050, SAMPLE_RATE)  # FFmpeg's first use is slow

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.camera import ZOOM_IN, Move, render_frames
        from kinema.media.face_models import release_models
        from kinema.media.faces import largest_face
        from kinema.media.pipeline import encode, fitted_input
        from kinema.media.speech import speak

        if request.image is None:
            raise EngineError(
                "The speaking engine animates a face in an image, and none was given."
            )
        # Spoken as given (not stripped): "Auto" hashes the exact text to pick the voice,
        # and the submit-time length check measured that same text.
        text = request.tts_text or ""
        field = request.tts_field or "tts_text"
        if not text.strip():
            raise InputError(field, "there is no text to speak")
        speech = speak(text, request.tts_speaker, "tts_speaker")
        if request.duration is None:
            seconds = SPEECH_LEAD_IN_SECONDS + speech.seconds + TAIL_SECONDS
        else:
            seconds = request.duration
        if speech.seconds > seconds:
            raise InputError(
                field,
                f"the text takes {speech.seconds:.1f} s to say, longer than the "
                f"{seconds:g} s video",
            )
        # Start after the usual breath, or earlier when the text needs the whole clip.
        lead_in = min(SPEECH_LEAD_IN_SECONDS, seconds - speech.seconds)
        count = max(1, round(seconds * FPS))

        fitted = fitted_input(ctx, request.image, request)
        height, width = fitted.shape[:2]
        check_person_generation(request, [(request.image.field, fitted)])
        ctx.check_cancelled()

        face = largest_face(fitted)
        # The face models' work is done: their memory goes to x264 instead (faces.py).
        release_models()
        frames: Iterator[Frame]
        if face is not None:
            frames = _talking_frames(fitted, face, _seed(request, text), speech, lead_in, count)
        elif request.capability == LIP_SYNC_TTS:
            raise EngineError("Could not detect a face in image_url", "FaceNotFound")
        else:
            # DIALOGUE asks for a video in which words are spoken, not for a face (the
            # prompt may describe a narrator, or the face may be too small to find): with
            # no face to animate, the words become a voice-over on a slow push-in.
            frames = render_frames(fitted, Move(ZOOM_IN, amount=VOICE_OVER_ZOOM), count)
        audio = soundtrack(speech, lead_in, count)
        ctx.check_cancelled()

        # Frames are made on a background thread while x264 encodes the previous ones.
        encode(ctx, frames, count, width, height, audio)
