"""Video dubbing (`pixverse/lip-sync`): the face in a video says new words.

The input video is checked from its container alone (`kinema.media.video_input`: format
sniffed, codec, pixels and length capped, nothing decoded), then streamed: decode one
frame -> track the face (`track_face`, one mesh run per frame) -> close its mouth and open
it again to the new speech (`kinema.media.lip_dub`, `FaceAnimator`'s mouth) -> encode,
a frame at a time on the pipeline's drawing thread while x264 encodes the previous ones;
the clip is never held whole.

The new speech is an audio file (`audio_url`, placed at 0 s, its loudness and brightness
drive the mouth as for the talking head) or a text in one of the documented voices
(`lip_sync_tts_content` + `lip_sync_tts_speaker`, spoken by eSpeak NG after the usual
breath, its phonemes drive the mouth as for the speaking engine). It replaces the
video's own sound. The output keeps the video's length, at 25 fps, and its size (scaled
down to 1080 on the short side): speech longer than the video is refused.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar

from kinema.engines.base import Context, Engine
from kinema.errors import EngineError, InputError
from kinema.media.pipeline import FPS, SAMPLE_RATE
from kinema.render_request import SPEECH_LEAD_IN_SECONDS, VIDEO_DUBBING, RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.media.face_anim import MouthTrack

    Samples = npt.NDArray[np.float32]

AUDIO_GRACE_SECONDS = 0.5  # an audio file may run this much past the video (then cut)
LOUDNESS_SHARE = 0.7  # of a spoken text's mouth opening, the part that follows loudness


def _seed(request: RenderRequest, video: bytes) -> int:
    if request.seed is not None:
        return request.seed
    digest = hashlib.sha256(video[:65536] + (request.tts_text or "").encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _blend(visemes: MouthTrack, loudness: MouthTrack) -> MouthTrack:
    """The mouth for spoken text: lip shapes from the phonemes, opening mostly from the
    voice's loudness (`LOUDNESS_SHARE`) and the rest from the phonemes, shut wherever the
    phonemes shut it (p, b, m and silence). Phonemes alone open the mouth for loud and
    quiet sounds alike; on a moving face the eye then reads the sync as loose (measured:
    opening vs loudness r 0.6-0.75 with phonemes alone, 0.8-0.9 with this mix)."""
    import numpy as np

    from kinema.media.face_anim import MouthTrack
    from kinema.media.visemes import CLOSED_OPEN

    opening = (1 - LOUDNESS_SHARE) * visemes.open + LOUDNESS_SHARE * loudness.open
    opening = np.where(visemes.open <= CLOSED_OPEN, visemes.open, opening).astype(np.float32)
    return MouthTrack(opening, visemes.width, visemes.round)


class DubbingEngine(Engine):
    name: ClassVar[str] = "dubbing"
    capabilities: ClassVar[frozenset[str]] = frozenset({VIDEO_DUBBING})
    requires = ("av", "cv2", "numpy", "espeakng_loader")

    def unavailable(self) -> str | None:
        from kinema.media.face_models import model_missing

        return super().unavailable() or model_missing()

    def load(self) -> None:
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy as np

        from kinema.media import lip_dub, video_input  # noqa: F401
        from kinema.media.audio import resample
        from kinema.media.face_models import preload
        from kinema.media.speech import speech_seconds

        preload()
        speech_seconds("Ready.", "Ava")
        resample(np.zeros(256, np.float32), 22050, SAMPLE_RATE)  # FFmpeg's first use is slow

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.lip_dub import Dubber
        from kinema.media.pipeline import encode
        from kinema.media.video_input import frame_count, inspect_video, output_size, video_frames

        if request.video is None:
            raise EngineError("The dubbing engine re-voices a video, and none was given.")
        data = ctx.fetch(request.video)
        field = request.video.field
        probe = inspect_video(data, field, request.max_video_seconds)
        count = frame_count(probe, FPS)
        width, height = output_size(probe.width, probe.height, request.short_side)
        ctx.check_cancelled()
        audio, track = self._speech(request, ctx, count)
        ctx.check_cancelled()

        dubber = Dubber(track, _seed(request, data))
        frames = dubber.frames(video_frames(data, field, width, height, count, FPS))
        encode(ctx, frames, count, width, height, audio)
        if dubber.faces_seen == 0:
            ctx.output_path.unlink(missing_ok=True)
            raise EngineError(f"Could not detect a face in {field}", "FaceNotFound")

    def _speech(
        self, request: RenderRequest, ctx: Context, count: int
    ) -> tuple[Samples, MouthTrack]:
        """The new soundtrack (exactly `count` frames long) and the mouth track for it."""
        import numpy as np

        from kinema.media.audio import decode_audio, resample
        from kinema.media.face_anim import mouth_track_from_audio
        from kinema.media.speech import PhonemeEvent, speak
        from kinema.media.visemes import mouth_track_from_phonemes

        seconds = count / FPS
        total = count * SAMPLE_RATE // FPS
        soundtrack = np.zeros(total, np.float32)
        if request.audio is not None:
            field = request.audio.field
            samples = decode_audio(
                ctx.fetch(request.audio), field, request.max_audio_seconds, SAMPLE_RATE
            )
            if samples.size / SAMPLE_RATE > seconds + AUDIO_GRACE_SECONDS:
                raise InputError(
                    field,
                    f"the audio is {samples.size / SAMPLE_RATE:.1f} s long, longer than the "
                    f"{seconds:.1f} s video (the dubbed video keeps the video's length)",
                )
            n = min(total, samples.size)
            soundtrack[:n] = samples[:n]
            return soundtrack, mouth_track_from_audio(soundtrack, SAMPLE_RATE, count, FPS)

        text = request.tts_text or ""
        field = request.tts_field or "lip_sync_tts_content"
        if not text.strip():
            raise InputError(field, "there is no text to speak")
        speech = speak(text, request.tts_speaker, "lip_sync_tts_speaker")
        if speech.seconds > seconds:
            raise InputError(
                field,
                f"the text takes {speech.seconds:.1f} s to say, longer than the "
                f"{seconds:.1f} s video (the dubbed video keeps the video's length)",
            )
        lead_in = min(SPEECH_LEAD_IN_SECONDS, seconds - speech.seconds)
        voice = resample(speech.samples, speech.sample_rate, SAMPLE_RATE)
        offset = round(lead_in * SAMPLE_RATE)
        n = max(0, min(voice.size, total - offset))
        soundtrack[offset : offset + n] = voice[:n]
        shifted = [PhonemeEvent(e.start + lead_in, e.phoneme) for e in speech.phonemes]
        visemes = mouth_track_from_phonemes(shifted, lead_in + speech.seconds, count, FPS)
        return soundtrack, _blend(
            visemes, mouth_track_from_audio(soundtrack, SAMPLE_RATE, count, FPS)
        )
