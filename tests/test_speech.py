"""Speech synthesis (eSpeak NG through ctypes) and the mouth tracks made from it."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from kinema.media import speech
from kinema.media.face_anim import MouthTrack
from kinema.media.speech import (
    VOICES,
    PhonemeEvent,
    Speech,
    speech_seconds,
    synthesize,
    voice_for,
)
from kinema.media.visemes import mouth_track_from_phonemes
from kinema.specs.base import SPEAKERS

SENTENCE = "Hello and welcome to the show. Today we talk about the weather in the mountains."


def pitch(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation."""
    size = int(0.04 * rate)
    found = []
    for start in range(0, len(samples) - size, size // 2):
        frame = samples[start : start + size] - samples[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 0.03:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.3 * corr[0]:
            found.append(rate / lag)
    return float(np.median(found))


def centroid(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float((spectrum * np.fft.rfftfreq(len(samples), 1 / rate)).sum() / spectrum.sum())


def test_the_documented_speakers_all_have_a_voice() -> None:
    assert set(VOICES) | {"Auto"} == set(SPEAKERS)
    assert len({v.espeak_voice for v in VOICES.values()}) == len(VOICES)
    for name, voice in VOICES.items():
        assert voice.name == name
        assert 0 <= voice.pitch <= 99 and 0 <= voice.range <= 99 and 80 <= voice.rate <= 450
    assert voice_for("chloe") is VOICES["Chloe"]
    with pytest.raises(ValueError, match="unknown speaker 'Zed'"):
        voice_for("Zed")


@pytest.mark.parametrize("speaker", SPEAKERS)
def test_every_speaker_says_the_text(speaker: str) -> None:
    said = synthesize("Hello and welcome. Nice to meet you.", speaker)
    assert isinstance(said, Speech)
    assert said.sample_rate == 22050 and said.samples.dtype == np.float32
    assert math.isclose(said.seconds, len(said.samples) / said.sample_rate)
    assert 1.2 < said.seconds < 4.0
    assert np.abs(said.samples).max() <= 1.0 and np.sqrt(np.mean(said.samples**2)) > 0.03
    # Phonemes: in order, inside the audio, from its start to close to its end.
    starts = [event.start for event in said.phonemes]
    assert starts == sorted(starts) and 0 <= starts[0] < 0.1 and starts[-1] <= said.seconds
    spoken = [event for event in said.phonemes if not event.phoneme.startswith("_")]
    assert spoken[-1].start > 0.75 * said.seconds
    assert not any("'" in event.phoneme or "," in event.phoneme for event in said.phonemes)
    # The audio is loud where the phonemes are: speech is not padded with silence.
    assert np.abs(said.samples[-int(0.1 * said.sample_rate) :]).max() > 0.01


def test_voices_differ_measurably() -> None:
    features = {}
    for name in VOICES:
        said = synthesize(SENTENCE, name)
        features[name] = np.log(
            [pitch(said.samples, said.sample_rate), said.seconds, centroid(said.samples, 22050)]
        )
    for a, b in itertools.combinations(VOICES, 2):
        # Each pair differs by more than 4 % in pitch, length or brightness.
        assert np.abs(features[a] - features[b]).max() > 0.04, (a, b)
    female = [math.exp(f[0]) for n, f in features.items() if VOICES[n].gender == "female"]
    male = [math.exp(f[0]) for n, f in features.items() if VOICES[n].gender == "male"]
    assert len(female) == len(male) == 7
    assert min(female) > 1.3 * max(male)  # every woman's voice above every man's
    assert 160 < np.mean(female) < 260 and 80 < np.mean(male) < 130


def test_same_input_gives_the_same_samples() -> None:
    first = synthesize("The quick brown fox.", "Ava").samples.copy()
    speech._rendered.cache_clear()
    synthesize.cache_clear()
    # What the library said in between must not leak into the next synthesis.
    synthesize("Something else entirely, said by someone else.", "Mason")
    synthesize("And more.", "Emily")
    speech._rendered.cache_clear()
    synthesize.cache_clear()
    again = synthesize("The quick brown fox.", "Ava")
    assert np.array_equal(first, again.samples)
    assert synthesize("The quick brown fox.", "Ava") is again  # cached
    assert not again.samples.flags.writeable


def test_auto_picks_a_voice_from_the_text() -> None:
    texts = [f"Line number {n} of the script." for n in range(24)]
    picks = [voice_for("Auto", text).name for text in texts]
    assert picks == [voice_for("Auto", text).name for text in texts]
    assert len(set(picks)) >= 6
    text = texts[0]
    named = synthesize(text, voice_for("Auto", text).name)
    assert np.array_equal(synthesize(text, "Auto").samples, named.samples)


def test_speech_seconds_measures_the_spoken_length() -> None:
    one = "Welcome to the show."
    lengths = [speech_seconds(" ".join([one] * n), "Liam") for n in (1, 2, 4)]
    assert lengths == sorted(lengths) and lengths[2] > 3 * lengths[0]
    assert speech_seconds(one, "Liam") == synthesize(one, "Liam").seconds
    assert speech_seconds("", "Ava") == 0.0
    assert speech_seconds("Ok.", "Ava", limit=8.0) == speech_seconds("Ok.", "Ava")
    # A huge text is refused fast: synthesis stops as soon as it runs past the limit.
    start = time.perf_counter()
    assert speech_seconds("word " * 50_000, "Auto", limit=8.0) > 8.0
    assert time.perf_counter() - start < 1.0


def test_control_characters_are_not_commands() -> None:
    plain = synthesize("Hello there", "Jack")
    noisy = synthesize("Hello\x01\x00 there\x1b", "Jack")
    assert np.array_equal(plain.samples, noisy.samples)


def test_importing_speech_is_cheap() -> None:
    code = "import sys, kinema.media.speech; print('numpy' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------ visemes
def track_for(text: str, lead: float = 0.3, tail: float = 0.6) -> tuple[Speech, MouthTrack]:
    said = synthesize(text, "Chloe")
    shifted = [PhonemeEvent(e.start + lead, e.phoneme) for e in said.phonemes]
    frames = math.ceil((lead + said.seconds + tail) * 25)
    return said, mouth_track_from_phonemes(shifted, lead + said.seconds, frames, 25)


def frames_of(said: Speech, phoneme: str, lead: float = 0.3) -> list[list[int]]:
    """The frame indices each occurrence of `phoneme` spans (shifted by `lead`)."""
    out = []
    for event, after in itertools.pairwise(said.phonemes):
        if event.phoneme == phoneme:
            first = math.floor((event.start + lead) * 25)
            out.append(list(range(first, max(first + 1, math.ceil((after.start + lead) * 25)))))
    return out


def test_mama_closes_on_m_and_opens_on_a() -> None:
    said, track = track_for("mama")
    opening = track.open
    ms = frames_of(said, "m")
    assert len(ms) == 2
    for span in ms:
        assert min(opening[i] for i in span) <= 0.05
    vowel = frames_of(said, "A:")[0]
    assert max(opening[i] for i in vowel) > 0.7


def test_oo_rounds_and_ee_spreads() -> None:
    said, track = track_for("ooh")
    middle = frames_of(said, "u:")[0]
    assert max(track.round[i] for i in middle) > 0.8
    assert min(track.width[i] for i in middle) < -0.5
    said, track = track_for("see")
    middle = frames_of(said, "i:")[0]
    assert max(track.width[i] for i in middle) > 0.6
    assert max(track.round[i] for i in middle) < 0.1


def test_mouth_is_closed_before_and_after_the_speech() -> None:
    said, track = track_for("Hello and welcome.")
    opening, width, rounding = track.open, track.width, track.round
    total = math.ceil((0.3 + said.seconds + 0.6) * 25)
    for values in (opening, width, rounding):
        assert values.dtype == np.float32 and values.shape == (total,)
    assert opening.min() >= 0 and opening.max() <= 1 and rounding.min() >= 0
    assert width.min() >= -1 and width.max() <= 1
    assert opening[:6].max() < 0.05  # the lead-in, bar the anticipation
    after = math.ceil((0.3 + said.seconds + 0.1) * 25)
    assert np.all(opening[after:] == 0) and np.all(rounding[after:] == 0)
    speaking = opening[8 : after - 3]
    assert speaking.mean() > 0.3
    # Eased, not stepped: most frame-to-frame changes are small.
    assert np.median(np.abs(np.diff(speaking))) < 0.2


def test_empty_and_unknown_phonemes() -> None:
    track = mouth_track_from_phonemes([], 0.0, 10)
    assert np.all(track.open == 0) and track.open.shape == (10,)
    odd = [PhonemeEvent(0.0, "Q7"), PhonemeEvent(0.3, "_")]
    assert mouth_track_from_phonemes(odd, 0.3, 10).open[3] > 0
