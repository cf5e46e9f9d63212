"""Phonemes -> mouth shapes: the per-frame mouth track a talking face is animated with.

Each eSpeak phoneme maps to a viseme, a target for three mouth parameters: `open` (jaw and
lips apart, 0..1), `width` (-1 pursed .. +1 spread) and `round` (lip protrusion, 0..1).
Real mouths never jump between targets: they ease from one to the next and start moving
before the sound (lips close for an "m" before the "m" is heard). So the targets are laid
out on a fine time grid, shifted earlier by a few tens of milliseconds, and smoothed with
a Gaussian; only the bilabial closures (p, b, m) are then forced shut, because a mouth that
never closes on "mama" reads as wrong at once even when everything else is smooth.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kinema.media.face_anim import MouthTrack
from kinema.media.speech import PhonemeEvent

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Shape = tuple[float, float, float]  # (open, width, round)

STEP = 0.005  # seconds per grid point
ANTICIPATION = 0.035  # mouth shapes lead the sound by this much
SMOOTHING = 0.022  # Gaussian sigma (seconds) of the coarticulation blur
LAST_PHONEME = 0.12  # how long the final phoneme lasts when nothing follows it
CLOSED_OPEN = 0.02  # the most a bilabial closure leaves the lips apart
DIPHTHONG_SPLIT = 0.55  # a diphthong glides to its second shape after this fraction

SILENCE: Shape = (0.0, 0.0, 0.0)
_CLOSED: Shape = (0.0, 0.05, 0.0)

# Monophthong and consonant targets, keyed by eSpeak's English mnemonics.
VISEMES: dict[str, Shape] = {
    # open vowels: jaw wide
    "a": (0.9, 0.2, 0.0), "aa": (0.95, 0.15, 0.0), "a#": (0.8, 0.15, 0.0),
    "A": (1.0, 0.0, 0.05), "A:": (1.0, 0.0, 0.05), "A@": (0.9, 0.0, 0.1),
    "V": (0.7, 0.1, 0.0),
    # mid vowels
    "@": (0.4, 0.0, 0.0), "@2": (0.4, 0.0, 0.0), "@5": (0.35, 0.0, 0.1),
    "3": (0.45, -0.1, 0.2), "3:": (0.45, -0.1, 0.25), "@L": (0.4, 0.05, 0.0),
    "E": (0.6, 0.5, 0.0), "E2": (0.55, 0.5, 0.0), "e": (0.55, 0.55, 0.0),
    "e@": (0.6, 0.45, 0.0),
    # close front vowels: lips spread
    "i": (0.25, 0.85, 0.0), "i:": (0.25, 0.9, 0.0), "I": (0.3, 0.7, 0.0),
    "I2": (0.3, 0.65, 0.0), "I#": (0.3, 0.6, 0.0), "i@": (0.3, 0.7, 0.0),
    # back rounded vowels: lips pushed forward
    "0": (0.75, -0.3, 0.55), "O": (0.75, -0.4, 0.65), "O:": (0.75, -0.4, 0.7),
    "O@": (0.7, -0.35, 0.6), "o": (0.55, -0.55, 0.8),
    "U": (0.3, -0.6, 0.85), "u": (0.25, -0.75, 1.0), "u:": (0.25, -0.8, 1.0),
    "U@": (0.35, -0.55, 0.8), "u@": (0.3, -0.6, 0.85),
    # bilabials: closed
    "p": _CLOSED, "b": _CLOSED, "m": _CLOSED, "m-": _CLOSED,
    # labiodentals: lower lip against the teeth
    "f": (0.08, 0.15, 0.0), "v": (0.08, 0.15, 0.0),
    # dentals and alveolars: teeth nearly together
    "T": (0.18, 0.2, 0.0), "D": (0.18, 0.2, 0.0),
    "t": (0.2, 0.3, 0.0), "d": (0.2, 0.3, 0.0), "t#": (0.25, 0.25, 0.0),
    "s": (0.12, 0.45, 0.0), "z": (0.12, 0.45, 0.0),
    "n": (0.2, 0.25, 0.0), "n-": (0.2, 0.25, 0.0), "l": (0.3, 0.2, 0.0), "l-": (0.3, 0.2, 0.0),
    # postalveolars: lips flared forward
    "S": (0.2, -0.35, 0.55), "Z": (0.2, -0.35, 0.55),
    "tS": (0.2, -0.35, 0.55), "dZ": (0.2, -0.35, 0.55),
    "r": (0.25, -0.3, 0.45), "r-": (0.25, -0.3, 0.45), "3r": (0.3, -0.3, 0.45),
    # velars and glottals: the mouth follows its neighbours, a little open
    "k": (0.3, 0.1, 0.0), "g": (0.3, 0.1, 0.0), "N": (0.3, 0.1, 0.0),
    "h": (0.4, 0.0, 0.0), "?": (0.2, 0.0, 0.0), "x": (0.3, 0.0, 0.0),
    # glides
    "w": (0.12, -0.7, 0.95), "W": (0.12, -0.7, 0.95), "w#": (0.12, -0.7, 0.95),
    "j": (0.2, 0.6, 0.0),
}  # fmt: skip

# Diphthongs glide from the first shape to the second.
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "aI": ("a", "I"), "aI@": ("a", "@"), "aI3": ("a", "3"), "aU": ("a", "U"),
    "eI": ("e", "I"), "OI": ("O", "I"), "oU": ("o", "U"), "o@": ("o", "@"),
    "aU@": ("a", "@"), "I@": ("I", "@"),
}  # fmt: skip

BILABIALS = frozenset({"p", "b", "m", "m-"})
_VOWEL_LETTERS = frozenset("aeiouAEIOUV@03")


def is_pause(phoneme: str) -> bool:
    return phoneme.startswith("_") or phoneme == ""


def viseme(phoneme: str) -> tuple[Shape, Shape]:
    """The (start, end) shapes for one eSpeak phoneme mnemonic: the same shape twice
    except for diphthongs. Unknown mnemonics fall back to their longest known prefix,
    then to a neutral vowel or consonant shape."""
    if is_pause(phoneme):
        return SILENCE, SILENCE
    if phoneme in DIPHTHONGS:
        first, second = DIPHTHONGS[phoneme]
        return VISEMES[first], VISEMES[second]
    for end in range(len(phoneme), 0, -1):
        shape = VISEMES.get(phoneme[:end])
        if shape is not None:
            return shape, shape
    neutral: Shape = (0.5, 0.0, 0.0) if phoneme[0] in _VOWEL_LETTERS else (0.25, 0.1, 0.0)
    return neutral, neutral


def _gaussian(sigma_steps: float) -> npt.NDArray[np.float64]:
    import numpy as np

    radius = max(1, math.ceil(3 * sigma_steps))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel: npt.NDArray[np.float64] = np.exp(-0.5 * (x / sigma_steps) ** 2)
    kernel /= kernel.sum()
    return kernel


def mouth_track_from_phonemes(
    phonemes: list[PhonemeEvent], seconds: float, n_frames: int, fps: int = 25
) -> MouthTrack:
    """The mouth, frame by frame, for speech whose phonemes start at the given times
    (seconds from frame 0) and whose audio ends at `seconds`: closed before the first
    phoneme and after the speech, eased between shapes while it lasts."""
    import numpy as np

    clip = n_frames / fps
    count = max(1, math.ceil((clip + 2 * ANTICIPATION) / STEP) + 1)
    times = np.arange(count) * STEP
    targets = np.zeros((count, 3), dtype=np.float64)
    closures: list[tuple[float, float]] = []
    ordered = sorted(phonemes, key=lambda event: event.start)
    for index, event in enumerate(ordered):
        start = min(event.start, seconds)
        following = ordered[index + 1].start if index + 1 < len(ordered) else start + LAST_PHONEME
        end = min(max(following, start), seconds)
        if end <= start or is_pause(event.phoneme):
            continue
        begin_shape, end_shape = viseme(event.phoneme)
        lo, hi = start - ANTICIPATION, end - ANTICIPATION
        split = lo + (hi - lo) * DIPHTHONG_SPLIT if begin_shape != end_shape else hi
        first = (times >= lo) & (times < split)
        targets[first] = begin_shape
        if split < hi:
            # The glide itself: interpolate towards the second shape.
            second = (times >= split) & (times < hi)
            weight = ((times[second] - split) / (hi - split))[:, None]
            targets[second] = (1 - weight) * np.array(begin_shape) + weight * np.array(end_shape)
        if event.phoneme in BILABIALS:
            closures.append((lo, hi))
    kernel = _gaussian(SMOOTHING / STEP)
    pad = len(kernel) // 2
    padded = np.pad(targets, ((pad, pad), (0, 0)), mode="edge")
    smooth = np.stack(
        [np.convolve(padded[:, axis], kernel, mode="valid") for axis in range(3)], axis=1
    )
    frame_times = np.arange(n_frames) / fps
    track = np.stack([np.interp(frame_times, times, smooth[:, axis]) for axis in range(3)], axis=1)
    for lo, hi in closures:
        # The lips must meet on every frame inside the closure, and on the nearest
        # frame when the closure is shorter than a frame.
        frames = np.flatnonzero((frame_times >= lo) & (frame_times < hi))
        if frames.size == 0:
            middle = round((lo + hi) / 2 * fps)
            frames = np.array([middle]) if 0 <= middle < n_frames else frames
        track[frames, 0] = np.minimum(track[frames, 0], CLOSED_OPEN)
    after = frame_times >= seconds + 3 * SMOOTHING  # the blur has faded out by then
    track[after] = SILENCE
    track[:, 0] = np.clip(track[:, 0], 0.0, 1.0)
    track[:, 1] = np.clip(track[:, 1], -1.0, 1.0)
    track[:, 2] = np.clip(track[:, 2], 0.0, 1.0)
    result = track.astype(np.float32)
    return MouthTrack(
        open=np.ascontiguousarray(result[:, 0]),
        width=np.ascontiguousarray(result[:, 1]),
        round=np.ascontiguousarray(result[:, 2]),
    )
