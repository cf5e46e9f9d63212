"""Room tone: the quiet, steady noise of a space with nobody talking in it.

This is an ambience bed, not generated sound: it does not depend on the picture, and it
makes no claim to. It exists so a client that asks for audio gets a track that behaves
like real location sound (editors expect room tone under a shot; digital silence sounds
like a dropout and makes cuts to other material jarring). Sound that belongs to the scene
(dialogue, effects) has to come from an engine that actually generates it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

ROOM_TONE_DBFS = -50.0  # RMS: audible on headphones, never competing with a mix
_SLOPE = 0.75  # amplitude ∝ f^-0.75: between pink (0.5) and brown (1.0) noise
_HIGH_PASS_HZ = 40.0  # below this a room is mostly HVAC rumble and handling noise
_LOW_PASS_HZ = 6000.0  # air absorbs the top: a room's hiss is dull, not bright
_FADE_S = 0.5


def room_tone(
    samples: int, sample_rate: int, seed: int, level_dbfs: float = ROOM_TONE_DBFS
) -> npt.NDArray[np.float32]:
    """`samples` mono float32 samples of room tone at `level_dbfs` RMS (before the
    fades), faded in and out over up to half a second; the same seed gives the same
    samples."""
    import numpy as np

    if samples <= 0:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed % 2**64)
    # Shape white noise in the frequency domain: one FFT gives the exact slope and
    # filters with no start-up transient (an IIR filter would need a warm-up).
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / sample_rate)
    with np.errstate(divide="ignore"):
        gain = np.where(freqs > 0, freqs**-_SLOPE, 0.0)
    gain *= (freqs / (freqs + _HIGH_PASS_HZ)) ** 2
    gain /= np.sqrt(1 + (freqs / _LOW_PASS_HZ) ** 4)
    noise = np.fft.irfft(spectrum * gain, samples)
    rms = float(np.sqrt(np.mean(noise**2)))
    if rms > 0:
        noise *= 10 ** (level_dbfs / 20) / rms
    # Raised-cosine fades, so the clip neither starts nor ends with a click.
    fade = min(round(_FADE_S * sample_rate), samples // 4)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, fade))
        noise[:fade] *= ramp
        noise[samples - fade :] *= ramp[::-1]
    out: npt.NDArray[np.float32] = noise.astype(np.float32)
    return out
