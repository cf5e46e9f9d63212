"""Lip-sync measured as a viewer would see it: the mouth opening the face-mesh model finds
in each decoded output frame, against the loudness envelope of the decoded audio track.

`measure(path)` decodes an MP4 with PyAV and returns both series and their agreement:
Pearson's r at zero lag, and the lag (in frames) at which their cross-correlation peaks
(positive: the mouth moves after the sound)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from kinema.media.faces import Face, find_faces, largest_face

FPS = 25
MAX_LAG = 6  # frames searched either side for the cross-correlation peak
ENVELOPE_SECONDS = 0.08  # the loudness window: two frames
# The mesh's inner-lip points facing each other across the middle half of the mouth:
# their mean gap is steadier than the centre pair's alone.
INNER_UPPER, INNER_LOWER = (13, 82, 312, 81, 311), (14, 87, 317, 178, 402)
Image = npt.NDArray[np.uint8]
Series = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LipSync:
    opening: Series  # per frame: inner-lip gap over face height (nan: no face found)
    envelope: Series  # per frame: RMS of the audio during that frame
    r: float  # Pearson's r of the two at zero lag
    lag: int  # frames; where the cross-correlation peaks


def decode(path: Path) -> tuple[list[Image], npt.NDArray[np.float32], int]:
    """(RGB frames, mono audio samples, sample rate) of an MP4."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        container.seek(0)
        sound = container.streams.audio[0]
        rate = int(sound.codec_context.sample_rate)
        chunks = [f.to_ndarray()[0] for f in container.decode(sound)]
    return frames, np.concatenate(chunks).astype(np.float32), rate


def _crop(frame: Image, box: tuple[int, int, int, int], factor: float) -> tuple[slice, slice]:
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h) * factor / 2
    rows = slice(max(0, round(cy - half)), min(frame.shape[0], round(cy + half)))
    cols = slice(max(0, round(cx - half)), min(frame.shape[1], round(cx + half)))
    return rows, cols


def mouth_opening(frame: Image, near: Face | None = None) -> tuple[float, Face | None]:
    """Inner-lip gap (mean over INNER_UPPER/INNER_LOWER) over face height (mesh points
    10-152) of the largest face,
    searched in the square around `near`'s box grown 2.2 times (cheaper, and it stays on
    the same person) or in the whole frame; (nan, None) without a face. Also returns the
    face found, in frame pixels."""
    face = None
    if near is not None:
        rows, cols = _crop(frame, near.box, 2.2)
        faces = find_faces(np.ascontiguousarray(frame[rows, cols]))
        if faces:
            found = faces[0]
            shift = np.array([cols.start, rows.start], np.float32)
            x, y, w, h = found.box
            box = (x + cols.start, y + rows.start, w, h)
            face = Face(box, found.landmarks + shift, found.score)
    if face is None:
        face = largest_face(frame)
    if face is None:
        return float("nan"), None
    points = face.landmarks
    upper, lower = points[list(INNER_UPPER)], points[list(INNER_LOWER)]
    gap = np.linalg.norm(lower - upper, axis=1).mean()
    return float(gap / np.linalg.norm(points[152] - points[10])), face


def _moved(face: Face, anchor: Face) -> bool:
    """Whether `face` has left the middle of the crop made around `anchor`."""
    (x, y, w, h), (ax, ay, aw, ah) = face.box, anchor.box
    shift = np.hypot(x + w / 2 - ax - aw / 2, y + h / 2 - ay - ah / 2)
    return bool(shift > 0.1 * max(aw, ah) or abs(w - aw) > 0.1 * aw)


def envelope(samples: npt.NDArray[np.float32], rate: int, count: int) -> Series:
    """The speech envelope at each of `count` video frames: RMS over ENVELOPE_SECONDS
    (Hann-weighted) centred on the frame, i.e. loudness low-passed to about the rate at
    which syllables, and jaws, move."""
    hop = rate / FPS
    window = round(ENVELOPE_SECONDS * rate)
    padded = np.zeros(round(count * hop) + 2 * window, np.float64)
    usable = samples[: padded.size - 2 * window]
    padded[window : window + usable.size] = usable
    hann = np.hanning(window)
    starts = (window + (np.arange(count) + 0.5) * hop - window / 2).astype(np.int64)
    frames = padded[starts[:, None] + np.arange(window)[None, :]]
    return np.asarray(np.sqrt((frames**2 * hann).sum(1) / hann.sum()), np.float64)


def correlation(a: Series, b: Series, lag: int = 0) -> float:
    """Pearson's r of a[i + lag] against b[i] over the frames where both are known."""
    if lag > 0:
        a, b = a[lag:], b[:-lag]
    elif lag < 0:
        a, b = a[:lag], b[-lag:]
    known = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[known], b[known])[0, 1])


def measure(path: Path, frames: range | None = None) -> LipSync:
    """Mouth opening against the audio envelope over `frames` (default: all of them)."""
    images, samples, rate = decode(path)
    loud = envelope(samples, rate, len(images))
    chosen = frames if frames is not None else range(len(images))
    opening = np.full(len(chosen), np.nan)
    # The crop is moved only when the face has moved: the mesh's points jitter with the
    # crop they are found in, and a still face should be measured through a still crop.
    anchor = None
    for slot, index in enumerate(chosen):
        opening[slot], found = mouth_opening(images[index], anchor)
        if found is not None and (anchor is None or _moved(found, anchor)):
            anchor = found
    loud = loud[list(chosen)]
    lags = range(-MAX_LAG, MAX_LAG + 1)
    scores = [correlation(opening, loud, lag) for lag in lags]
    best = lags[int(np.nanargmax(scores))]
    return LipSync(opening, loud, correlation(opening, loud), best)
