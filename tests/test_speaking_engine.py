"""SpeakingEngine end to end: a real photo in, a talking MP4 out, checked with PyAV and
the face-mesh model (the mouth must move while the voice speaks, and rest after)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import skimage.data

from kinema.engines.speaking import SAMPLE_RATE, SpeakingEngine, resample, soundtrack
from kinema.errors import Cancelled, EngineError, InputError
from kinema.media.faces import find_faces
from kinema.media.speech import PhonemeEvent, synthesize
from kinema.media.visemes import mouth_track_from_phonemes
from kinema.render_request import (
    DIALOGUE,
    LIP_SYNC_TTS,
    SPEECH_LEAD_IN_SECONDS,
    MediaRef,
    RenderRequest,
)
from tests.engine_context import EngineTestContext, data_uri, encode_image, picture

ASTRONAUT = encode_image(np.ascontiguousarray(skimage.data.astronaut()), "PNG")
NO_FACE = encode_image(picture(640, 360, seed=3), "PNG")
TEXT, SPEAKER = "Hello and welcome.", "Chloe"


@pytest.fixture(scope="module")
def engine() -> SpeakingEngine:
    engine = SpeakingEngine()
    engine.load()
    return engine


def request(**overrides: Any) -> RenderRequest:
    """What pixverse's lip_sync_tts_content/lip_sync_tts_speaker render to, at 360p."""
    base = RenderRequest(
        model="pixverse/v5/image-to-video",
        capability=LIP_SYNC_TTS,
        prompt="a person talking to the camera",
        image=MediaRef("image_url", data_uri(ASTRONAUT, "image/png")),
        tts_text=TEXT,
        tts_speaker=SPEAKER,
        tts_field="lip_sync_tts_content",
        duration=5.0,
        short_side=360,
        generate_audio=True,
    )
    return dataclasses.replace(base, **overrides)


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray, float, float]:
    """(RGB frames, mono audio samples, video seconds, audio seconds)."""
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and sound.codec_context.name == "aac"
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(sound.duration * sound.time_base)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
        container.seek(0)
        audio = np.concatenate([f.to_ndarray()[0] for f in container.decode(sound)])
    return frames, audio, video_seconds, audio_seconds


@pytest.fixture(scope="module")
def talking(engine: SpeakingEngine, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ctx = EngineTestContext(tmp_path_factory.mktemp("speaking"))
    engine.generate(request(), ctx)
    return ctx, decode(ctx.output_path)


def test_lip_sync_clip_has_speech_and_the_requested_length(talking: Any) -> None:
    ctx, (frames, audio, video_seconds, audio_seconds) = talking
    assert len(frames) == 125 and frames[0].shape == (360, 360, 3)
    assert math.isclose(video_seconds, 5.0, abs_tol=0.01)
    assert math.isclose(audio_seconds, video_seconds, abs_tol=0.05)
    assert len(ctx.reports) == 125 and ctx.reports[-1] == 1.0
    said = synthesize(TEXT, SPEAKER)
    # The voice starts after the lead-in and is silent again once the text is said.
    lead, end = SPEECH_LEAD_IN_SECONDS, SPEECH_LEAD_IN_SECONDS + said.seconds
    before = audio[: int((lead - 0.05) * SAMPLE_RATE)]
    during = audio[int(lead * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    after = audio[int((end + 0.15) * SAMPLE_RATE) :]
    assert np.abs(before).max() < 0.02 and np.abs(after).max() < 0.02
    assert np.sqrt(np.mean(during**2)) > 0.05


def test_the_mouth_moves_with_the_speech_and_rests_after(talking: Any) -> None:
    _, (frames, _, _, _) = talking
    said = synthesize(TEXT, SPEAKER)
    lead = SPEECH_LEAD_IN_SECONDS
    end = lead + said.seconds
    shifted = [PhonemeEvent(event.start + lead, event.phoneme) for event in said.phonemes]
    track = mouth_track_from_phonemes(shifted, end, len(frames))

    def opening(index: int) -> float:
        """Inner-lip gap (mesh points 13, 14) as the face-mesh model sees it."""
        faces = find_faces(frames[index])
        assert faces, f"no face found in frame {index}"
        points, box = faces[0].landmarks, faces[0].box
        return float(np.linalg.norm(points[14] - points[13]) / box[3])

    indices = list(range(0, round(end * 25) + 8, 2))
    seen = np.array([opening(i) for i in indices])
    speaking = seen[[lead * 25 + 2 < i < end * 25 for i in indices]]
    resting = np.array([opening(i) for i in range(round((end + 0.4) * 25), 125, 12)])
    # The photo's own smile already parts the lips; speech opens them well beyond that.
    assert speaking.max() > 1.4 * np.median(resting)
    assert speaking.mean() > 1.15 * resting.mean()
    # In sync: what the model sees follows the mouth track frame by frame.
    assert np.corrcoef(seen, track.open[indices])[0, 1] > 0.5


def test_no_face_is_refused(engine: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path, {"image_url": NO_FACE})
    with pytest.raises(EngineError) as failure:
        engine.generate(request(), ctx)
    assert failure.value.message == "Could not detect a face in image_url"
    assert failure.value.name == "FaceNotFound"
    assert not ctx.output_path.exists()


def test_dialogue_without_a_face_is_a_voice_over(engine: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path, {"image_url": NO_FACE})
    words = "Not today."
    dialogue = request(
        model="google/veo-3.1-i2v-fast", capability=DIALOGUE, tts_text=words,
        tts_speaker="Auto", tts_field="prompt", duration=2.0, aspect="16:9",
    )  # fmt: skip
    engine.generate(dialogue, ctx)
    frames, audio, video_seconds, audio_seconds = decode(ctx.output_path)
    assert len(frames) == 50 and frames[0].shape == (360, 640, 3)
    assert math.isclose(audio_seconds, video_seconds, abs_tol=0.05)
    said = synthesize(words, "Auto")
    start = int(SPEECH_LEAD_IN_SECONDS * SAMPLE_RATE)
    spoken = audio[start : start + int(said.seconds * SAMPLE_RATE)]
    assert np.sqrt(np.mean(spoken**2)) > 0.05
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 2  # a slow zoom


def test_text_longer_than_the_clip_is_refused(engine: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path)
    long_text = "This sentence is much too long to be said in the single second we allow."
    with pytest.raises(InputError, match="lip_sync_tts_content: the text takes"):
        engine.generate(request(tts_text=long_text, duration=1.0), ctx)
    with pytest.raises(InputError, match="no text to speak"):
        engine.generate(request(tts_text="  "), ctx)
    assert ctx.fetched == []  # refused before fetching anything


def test_cancellation_stops_the_job(engine: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path, cancel_after=10)
    with pytest.raises(Cancelled):
        engine.generate(request(duration=5.0), ctx)
    assert len(ctx.reports) == 10
    assert not ctx.output_path.exists()


def test_same_request_gives_the_same_bytes(engine: SpeakingEngine, tmp_path: Path) -> None:
    clips = []
    for name in ("a.mp4", "b.mp4"):
        ctx = EngineTestContext(tmp_path, output_name=name)
        engine.generate(request(duration=2.0, tts_text="Yes, of course.", tts_speaker="Auto"), ctx)
        clips.append(ctx.output_path.read_bytes())
    assert clips[0] == clips[1]


def test_resampling_keeps_pitch_and_length() -> None:
    rate = 22050
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32) * 0.5
    out = resample(tone, rate, SAMPLE_RATE)
    assert out.dtype == np.float32 and out.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(out[4800:-4800]))
    peak = np.fft.rfftfreq(out.size - 9600, 1 / SAMPLE_RATE)[np.argmax(spectrum)]
    assert abs(peak - 440) < 2
    assert math.isclose(np.sqrt(np.mean(out[4800:-4800] ** 2)), 0.5 / math.sqrt(2), rel_tol=0.02)


def test_soundtrack_places_the_speech_at_the_lead_in() -> None:
    said = synthesize("Yes.", "Ava")
    audio = soundtrack(said, 0.3, 50)
    assert audio.size == 2 * SAMPLE_RATE
    assert np.abs(audio[: int(0.29 * SAMPLE_RATE)]).max() == 0
    assert np.abs(audio[int(0.3 * SAMPLE_RATE) :]).max() > 0.1
