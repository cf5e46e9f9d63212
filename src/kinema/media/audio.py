"""Input audio: recognise it by its bytes, decode it to mono float32 at one sample rate.

PyAV reads from memory (no temporary files) and is told the demuxer to use, so a file that
sniffs as WAV is never handed to some other, more exotic FFmpeg demuxer.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from kinema.errors import InputError
from kinema.media.sniff import AUDIO_FORMATS, sniff_audio

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_DISPLAY = {"mp3": "MP3", "wav": "WAV", "m4a": "M4A", "aac": "AAC", "ogg": "OGG"}
_DEMUXER = {"mp3": "mp3", "wav": "wav", "m4a": "mp4", "aac": "aac", "ogg": "ogg"}
# Encoders pad their last frame and decoders emit a priming delay, so a clip cut at
# exactly the limit decodes a little longer; forgive that much (and trim it off).
_LENGTH_TOLERANCE_S = 0.1


def _format_list() -> str:
    names = [_DISPLAY[f] for f in AUDIO_FORMATS]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _open(data: bytes, field: str) -> tuple[Any, str]:
    """The opened container (an av InputContainer) and the sniffed format."""
    import av

    fmt = sniff_audio(data)
    if fmt is None:
        raise InputError(field, f"not a recognised audio file ({_format_list()})")
    try:
        container = av.open(io.BytesIO(data), mode="r", format=_DEMUXER[fmt])
    except av.FFmpegError:
        raise InputError(field, f"could not be decoded as {_DISPLAY[fmt]} audio") from None
    if not container.streams.audio:
        container.close()
        raise InputError(field, f"the {_DISPLAY[fmt]} file contains no audio stream")
    return container, fmt


def _too_long(field: str, seconds: float, max_seconds: float) -> InputError:
    return InputError(
        field, f"audio is {seconds:.1f} s long; this model accepts at most {max_seconds:g} s"
    )


def decode_audio(
    data: bytes, field: str, max_seconds: float | None, sample_rate: int = 48000
) -> npt.NDArray[np.float32]:
    """Decode any supported audio file to mono float32 samples in [-1, 1] at
    `sample_rate`. Raises InputError when it is unknown, undecodable, empty or longer
    than `max_seconds` (None = no limit)."""
    import av
    import numpy as np

    container, fmt = _open(data, field)
    # Mono sources stay untouched; anything wider is mixed to stereo by FFmpeg (which
    # knows surround layouts) and then averaged, since FFmpeg's own stereo -> mono
    # mix adds the channels at -3 dB each and would change the loudness.
    resampler: Any = None
    stereo = False
    # Keep at most the allowed length in memory; past it, only count samples so the
    # error can say how long the file really is.
    keep = None if max_seconds is None else int((max_seconds + _LENGTH_TOLERANCE_S) * sample_rate)
    chunks: list[npt.NDArray[np.float32]] = []
    kept = total = 0

    def take(frames: list[Any]) -> None:
        nonlocal kept, total
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            if stereo:
                samples = samples.reshape(-1, 2).mean(axis=1, dtype=np.float32)
            total += samples.size
            if keep is None or kept < keep:
                piece = samples if keep is None else samples[: keep - kept]
                chunks.append(piece)
                kept += piece.size

    try:
        with container:
            for frame in container.decode(container.streams.audio[0]):
                if resampler is None:
                    stereo = frame.layout.nb_channels > 1
                    layout = "stereo" if stereo else "mono"
                    resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
                take(resampler.resample(frame))
            if resampler is not None:
                take(resampler.resample(None))
    except (av.FFmpegError, ValueError):
        raise InputError(field, f"could not be decoded as {_DISPLAY[fmt]} audio") from None
    if total == 0:
        raise InputError(field, f"the {_DISPLAY[fmt]} file contains no audio samples")
    samples = np.concatenate(chunks)
    if max_seconds is not None:
        if total > len(samples):
            raise _too_long(field, total / sample_rate, max_seconds)
        samples = samples[: round(max_seconds * sample_rate)]
    # In place: a long track is not copied again (the concatenation is the only copy).
    out: npt.NDArray[np.float32] = np.clip(samples, -1.0, 1.0, out=samples)
    return out


def audio_duration(data: bytes, field: str) -> float:
    """Length in seconds, from the container header when it has one (cheap), otherwise
    by decoding (raw AAC/MP3 streams without a header carry no duration)."""
    import av

    container, _ = _open(data, field)
    with container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return float(container.duration / av.time_base)
    return float(decode_audio(data, field, None, 16000).size / 16000)


def resample(samples: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    """Mono float samples from `rate` to `target` Hz with FFmpeg's resampler (band-limited,
    unlike interpolation), the same length in seconds as the input."""
    import av
    import numpy as np

    if rate == target or samples.size == 0:
        return np.asarray(samples, dtype=np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = rate
    pieces = [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    length = round(samples.size * target / rate)
    out = np.zeros(length, np.float32)
    out[: min(length, joined.size)] = joined[:length]
    return out
