"""Text to speech for the documented system voices, with phoneme timing for lip-sync.

eSpeak NG (the library bundled by `espeakng-loader`, driven through ctypes: no binary, no
downloaded weights) speaks a few hundred times faster than real time on one core and
reports every phoneme with its position in the audio, which is what a mouth track needs.

Determinism. libespeak-ng keeps state in C statics that `espeak_Initialize` does not
reset (the pitch-flutter phase, the gain control, the libc `rand()` behind breathy
voices), so the same text came out a few samples different depending on what the process
had said before. Each synthesis therefore loads the library, speaks, and unloads it again
(`dlclose` drops the last reference, so the next `dlopen` maps fresh statics); that costs
~5 ms and makes the output a function of (text, voice) alone. The library is global state
either way, so one process-wide lock serialises every use of it.

This module is imported by the API process for the submit-time length check
(`speech_seconds`): it imports nothing heavy at import time, and numpy only inside
`synthesize`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# speak_lib.h, API revision 12.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit() in our process
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # no espeakSSML, no espeakPHONEMES: the text is only ever read as text
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_BUFFER_MS = 100  # audio handed to the callback at a time; also the abort granularity

# Trailing audio below this (1 % of full scale: echo tails, the closing pause) is not
# speech; a short tail is kept so the last consonant is not clipped.
_SILENCE_LEVEL = 328
_TAIL_SECONDS = 0.06
_STRESS_MARKS = str.maketrans("", "", "',")


@dataclass(frozen=True)
class Voice:
    """One documented speaker as eSpeak renders it: a variant file (`+f3`, `+m2`...)
    for the timbre, plus pitch (0-99, 50 = the variant's own), speaking rate in words
    per minute and intonation range (0-99, 50 = normal)."""

    name: str
    espeak_voice: str
    gender: str
    pitch: int
    rate: int
    range: int


# Every speaker differs from the others in variant (formants, i.e. timbre) and in pitch
# or rate by a margin a listener hears; the table is part of the API's behaviour, so
# changing a row changes what existing clients get for that name.
VOICES: dict[str, Voice] = {
    voice.name: voice
    for voice in (
        Voice("Harper", "en-us+f1", "female", 52, 168, 55),
        Voice("Ava", "en-us+f2", "female", 58, 176, 60),
        Voice("Isabella", "en-gb-x-rp+f4", "female", 55, 160, 65),
        Voice("Sophia", "en-us+f3", "female", 26, 158, 50),
        Voice("Emily", "en-us+f5", "female", 64, 184, 58),
        Voice("Chloe", "en-us+f4", "female", 69, 172, 70),
        Voice("Julia", "en-us+linda", "female", 41, 164, 48),
        Voice("Mason", "en-us+m1", "male", 48, 166, 50),
        Voice("Jack", "en-us+m2", "male", 57, 182, 55),
        Voice("Liam", "en-us+m3", "male", 57, 172, 60),
        Voice("James", "en-us+m4", "male", 40, 156, 45),
        Voice("Oliver", "en-gb-x-rp+m6", "male", 51, 162, 58),
        Voice("Adrian", "en-us+m7", "male", 44, 150, 40),
        Voice("Ethan", "en-us+m5", "male", 65, 178, 62),
    )
}
AUTO = "Auto"
_LOWER = {name.lower(): name for name in VOICES}


def voice_for(speaker: str, seed_text: str = "") -> Voice:
    """The voice of a documented speaker (any casing). "Auto" picks one from a hash of
    `seed_text`, so the same text always gets the same voice."""
    if speaker.lower() == AUTO.lower():
        names = sorted(VOICES)
        digest = hashlib.sha256(seed_text.encode()).digest()
        return VOICES[names[int.from_bytes(digest[:8], "big") % len(names)]]
    try:
        return VOICES[_LOWER[speaker.lower()]]
    except KeyError:
        known = ", ".join([*VOICES, AUTO])
        raise ValueError(f"unknown speaker {speaker!r} (known: {known})") from None


@dataclass(frozen=True)
class PhonemeEvent:
    """A phoneme starting at `start` seconds: eSpeak's mnemonic without stress marks
    ("h", "@", "oU", "A:", "m"; "_" and "_:" are pauses)."""

    start: float
    phoneme: str


@dataclass(frozen=True)
class Speech:
    samples: npt.NDArray[np.float32]  # mono, in [-1, 1]; read-only (cached and shared)
    sample_rate: int
    phonemes: list[PhonemeEvent]  # increasing start times, all within the audio
    seconds: float  # len(samples) / sample_rate


class _Id(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds into the output
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Rendered:
    pcm: bytes  # native-endian int16 mono
    sample_rate: int
    phonemes: tuple[tuple[float, str], ...]
    complete: bool  # False when synthesis stopped at a length limit


def _clean(text: str) -> str:
    """Control characters out (eSpeak reads some as embedded commands, NUL ends the
    string), line breaks and tabs as spaces."""
    return "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in text
        if ch in "\t\n\r\v\f" or unicodedata.category(ch)[0] != "C"
    )


def _paths() -> tuple[str, str]:
    loader: Any = importlib.import_module("espeakng_loader")
    return str(loader.get_library_path()), str(loader.get_data_path())


def _render(text: str, voice: Voice, limit: float | None) -> _Rendered:
    """Speak `text` with a freshly loaded libespeak-ng (see the module docstring);
    stop once more than `limit` seconds of audio came out."""
    import _ctypes

    library_path, data_path = _paths()
    chunks: list[bytes] = []
    phonemes: list[tuple[float, str]] = []
    produced = 0
    sample_rate = 0
    stopped = False

    def collect(wav: Any, count: int, events: Any) -> int:
        # Runs inside espeak_Synth; an exception here would be printed and swallowed by
        # ctypes, so nothing in it may raise. Returning 1 asks eSpeak to stop.
        nonlocal produced, stopped
        if count > 0 and wav:
            chunks.append(ctypes.string_at(wav, count * 2))
            produced += count
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                name = event.id.string.decode("utf-8", "replace").translate(_STRESS_MARKS)
                phonemes.append((event.audio_position / 1000.0, name))
            index += 1
        if limit is not None and sample_rate and produced > limit * sample_rate:
            stopped = True
            return 1
        return 0

    callback = _Callback(collect)
    encoded = _clean(text).encode()
    with _LOCK:
        library = ctypes.CDLL(library_path)
        try:
            library.espeak_Initialize.argtypes = (
                ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
            )  # fmt: skip
            library.espeak_Synth.argtypes = (
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            )  # fmt: skip
            library.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
            sample_rate = library.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS,
                _BUFFER_MS,
                data_path.encode(),
                _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
            )
            if sample_rate <= 0:
                raise RuntimeError(f"libespeak-ng failed to initialise (data at {data_path})")
            try:
                library.espeak_SetSynthCallback(callback)
                if library.espeak_SetVoiceByName(voice.espeak_voice.encode()) != 0:
                    raise RuntimeError(f"eSpeak has no voice {voice.espeak_voice!r}")
                for parameter, value in (
                    (_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch),
                    (_PARAM_RANGE, voice.range),
                ):  # fmt: skip
                    library.espeak_SetParameter(parameter, value, 0)
                # Breathy variants draw noise from libc rand(); seed it like the rest.
                ctypes.CDLL(None).srand(1)
                library.espeak_ng_SetRandSeed(1)
                status = library.espeak_Synth(
                    encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                if status != 0 and not stopped:
                    raise RuntimeError(f"espeak_Synth failed with status {status}")
            finally:
                library.espeak_Terminate()
        finally:
            handle = library._handle
            del library
            _ctypes.dlclose(handle)
    pcm = b"".join(chunks)
    if not stopped:
        pcm = _trim(pcm, sample_rate)
    end = len(pcm) // 2 / sample_rate
    events = tuple((min(start, end), name) for start, name in phonemes)
    return _Rendered(pcm, sample_rate, events, complete=not stopped)


def _trim(pcm: bytes, sample_rate: int) -> bytes:
    """`pcm` without its trailing silence, keeping a short tail."""
    samples = memoryview(pcm).cast("h")
    last = len(samples) - 1
    while last >= 0 and -_SILENCE_LEVEL < samples[last] < _SILENCE_LEVEL:
        last -= 1
    keep = min(len(samples), last + 1 + round(_TAIL_SECONDS * sample_rate)) if last >= 0 else 0
    return pcm[: keep * 2]


@functools.lru_cache(maxsize=32)
def _rendered(text: str, speaker: str) -> _Rendered:
    return _render(text, voice_for(speaker, text), None)


def speech_seconds(text: str, speaker: str, *, limit: float | None = None) -> float:
    """How long `speaker` takes to say `text`, in seconds (what `synthesize` returns as
    `seconds`). With `limit`, synthesis stops as soon as the speech is known to run past
    it and the result is then only guaranteed to exceed `limit`: cheap even for an
    enormous text, which is what a submit-time check wants."""
    if limit is None:
        return _seconds(_rendered(text, speaker))
    rendered = _render(text, voice_for(speaker, text), limit)
    if rendered.complete:
        return _seconds(rendered)
    return max(_seconds(rendered), limit + 1e-3)


def _seconds(rendered: _Rendered) -> float:
    return len(rendered.pcm) // 2 / rendered.sample_rate


@functools.lru_cache(maxsize=8)
def synthesize(text: str, speaker: str) -> Speech:
    """`text` spoken by `speaker` (a documented name or "Auto"). The same (text,
    speaker) always gives the same samples; recent results are cached."""
    import numpy as np

    rendered = _rendered(text, speaker)
    samples = np.frombuffer(rendered.pcm, dtype=np.int16).astype(np.float32) / 32768.0
    samples.flags.writeable = False
    phonemes = [PhonemeEvent(start, name) for start, name in rendered.phonemes]
    return Speech(samples, rendered.sample_rate, phonemes, _seconds(rendered))


def speak(text: str, speaker: str | None, speaker_field: str) -> Speech:
    """`synthesize` for an engine: a speaker the spec should not have let through is an
    InputError naming `speaker_field`; a missing or broken libespeak-ng is an
    EngineError (the job fails with the reason, the worker keeps serving)."""
    from kinema.errors import EngineError, InputError

    try:
        return synthesize(text, speaker or "Auto")
    except ValueError as error:
        raise InputError(speaker_field, str(error)) from None
    except RuntimeError as error:
        raise EngineError(f"Speech synthesis failed: {error}") from None
