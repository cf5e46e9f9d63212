"""Sound for frames a model generated: speech for words quoted in the prompt (or a text
to speak) over room tone, planned before any frame is made, and the lip-sync that moves
the mouth of the face found in each generated frame to that speech. Used by engines whose
frames come from elsewhere than a still photo (the GPU engines, the first/last morph)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinema.errors import InputError
from kinema.media.pipeline import FPS, SAMPLE_RATE
from kinema.render_request import SPEECH_LEAD_IN_SECONDS, RenderRequest, extract_dialogue

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.media.face_anim import MouthTrack
    from kinema.media.faces import Face

    Frame = npt.NDArray[np.uint8]

log = logging.getLogger("kinema.media.soundtrack")

MOUTH_ACTIVE = 0.01  # below this the mouth rests and the frame passes unchanged
NO_FACE_SKIP = 5  # frames passed over without a search after one that showed no face
TRACK_REACH = 2.5  # a tracked face is looked for within its box grown this much


@dataclass
class Soundtrack:
    samples: npt.NDArray[np.float32]
    mouth: MouthTrack | None = None  # the lip-sync track when words are spoken
    seed: int = 0


def plan_sound(request: RenderRequest, count: int, seed: int) -> Soundtrack | None:
    """The clip's sound, made before any GPU work: words quoted in the prompt (or the
    request's own text to speak) spoken over room tone, else room tone alone; None
    without `generate_audio`. Speech that cannot fit the clip is an InputError now.
    `seed` makes the room tone (and the lip-sync's idle details) reproducible."""
    if not request.generate_audio:
        return None
    from kinema.media.ambience import room_tone

    total = count * SAMPLE_RATE // FPS
    audio = room_tone(total, SAMPLE_RATE, seed)
    words = request.tts_text or extract_dialogue(request.prompt)
    if words is None or not words.strip():
        return Soundtrack(audio, None, seed)
    import numpy as np

    from kinema.media.audio import resample
    from kinema.media.face_anim import with_loudness
    from kinema.media.speech import PhonemeEvent, speak
    from kinema.media.visemes import mouth_track_from_phonemes

    field_name = request.tts_field or "prompt"
    speech = speak(words, request.tts_speaker, request.tts_field or "tts_speaker")
    seconds = count / FPS
    if speech.seconds > seconds:
        raise InputError(
            field_name,
            f"the quoted words take {speech.seconds:.1f} s to say, longer than the "
            f"{seconds:g} s video",
        )
    lead_in = min(SPEECH_LEAD_IN_SECONDS, seconds - speech.seconds)
    voice = resample(speech.samples, speech.sample_rate, SAMPLE_RATE)
    offset = round(lead_in * SAMPLE_RATE)
    n = max(0, min(voice.size, total - offset))
    placed = np.zeros(total, np.float32)
    placed[offset : offset + n] = voice[:n]
    audio += placed
    shifted = [PhonemeEvent(e.start + lead_in, e.phoneme) for e in speech.phonemes]
    mouth = mouth_track_from_phonemes(shifted, lead_in + speech.seconds, count, FPS)
    return Soundtrack(audio, with_loudness(mouth, placed, SAMPLE_RATE, FPS), seed)


def _near(frame: Frame, previous: Face) -> Face | None:
    """The largest face in the region around where `previous` was (its box grown by
    TRACK_REACH), in `frame`'s pixels: a search there is a few ms where one over a 720p
    frame is ~30, and it stays on the same person."""
    import numpy as np

    from kinema.media.faces import Face, largest_face

    height, width = frame.shape[:2]
    x, y, w, h = previous.box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h) * TRACK_REACH / 2
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    face = largest_face(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    if face is None:
        return None
    fx, fy, fw, fh = face.box
    shift = np.array([x0, y0], np.float32)
    return Face((fx + x0, fy + y0, fw, fh), face.landmarks + shift, face.score)


def lip_sync(frames: Iterator[Frame], mouth: MouthTrack, seed: int) -> Iterator[Frame]:
    """The frames with the mouth of the largest face in each moved to the speech
    (`FaceAnimator`, mouth only: no added head motion or blinks, the frames have their
    own). The face is tracked from frame to frame (searched near where it was, anywhere
    when it is lost). Frames without a face, or while the mouth rests, pass unchanged:
    what the speech lands on when no face is found is a voice-over."""
    from kinema.media.face_models import model_missing
    from kinema.media.faces import largest_face

    if model_missing() is not None:
        log.warning("lip-sync skipped: %s", model_missing())
        yield from frames
        return
    from kinema.media.face_anim import FaceAnimator, MouthTrack

    look_at = 0  # the next frame worth a face search
    tracked: Face | None = None
    for index, frame in enumerate(frames):
        if index >= len(mouth.open) or index < look_at:
            yield frame
            continue
        values = (mouth.open[index], mouth.width[index], mouth.round[index])
        if max(abs(float(v)) for v in values) <= MOUTH_ACTIVE:
            yield frame
            continue
        face = _near(frame, tracked) if tracked is not None else None
        if face is None:
            face = largest_face(frame)
        tracked = face
        if face is None:
            # A face rarely appears from one frame to the next: without one, look again
            # a few frames on (a search is ~30 ms at 720p; the encoder waits for it).
            look_at = index + NO_FACE_SKIP
            yield frame
            continue
        one = MouthTrack(mouth.open[index : index + 1], mouth.width[index : index + 1],
                         mouth.round[index : index + 1])  # fmt: skip
        yield next(iter(FaceAnimator(frame, face, seed).frames(one)))
