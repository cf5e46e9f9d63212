"""Write and probe the MP4s Kinema serves: H.264 yuv420p (+ AAC), `+faststart`.

Frames stream through one at a time, so a clip never sits in memory whole. RGB -> yuv420p
is done by OpenCV's `COLOR_RGB2YUV_I420` rather than by handing PyAV rgb24 frames to
convert with swscale: ~0.15 ms against ~6 ms a 720p frame, which took a 125-frame 720p
encode on 2 cores from 1.2-1.35 s down to 0.87-0.90 s. Both produce BT.601 limited-range
YUV (identical to within one code value), and the stream is tagged as such.

Memory: the conversion writes into one reused yuv420p buffer that PyAV wraps without a
copy (x264 copies each picture into its own buffers before `encode` returns), and the
audio is never copied whole more than once. `release_heap` hands freed memory back to the
system around an encode (`kinema.media.pipeline.encode`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

AUDIO_CHUNK = 1024  # samples per AAC frame
AUDIO_BITRATE = 128_000
_libc: Any = None  # glibc, once looked up; False where there is none


def release_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`; a no-op
    on other C libraries).

    glibc keeps freed blocks for reuse, and once a large block has been freed (Pillow's
    16 MB image blocks, a decoded input, a flow field) it serves blocks up to that size
    from the heap too, where what is freed mostly stays resident. Without a trim, what
    decoding and analysing the inputs freed is still held while x264 allocates its own
    buffers, and a worker keeps its largest job's heap between jobs. `encode` trims
    before the encoder starts and after it is done, and `write_mp4` once x264 is closed,
    before it probes the file it wrote (which otherwise added ~7 MB on top of x264's
    freed buffers at the very end of the peak): a few milliseconds each. (Fixing
    glibc's mmap threshold instead bounds the heap as well, but page-faults every fresh
    large block: it made one-off whole-image work such as `stylize` 30 % slower.)
    """
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util
        import platform

        _libc = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _libc.malloc_trim.argtypes = (ctypes.c_size_t,)
            except (OSError, AttributeError):  # an unusual libc: keep its defaults
                _libc = False
    if _libc:
        _libc.malloc_trim(0)


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds, of the video stream
    width: int
    height: int
    fps: float
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    file_size: int


def _audio_source(audio: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The samples as (n, channels), a view of mono (n,) or (n, channels) input."""
    import numpy as np

    samples = np.asarray(audio)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] not in (1, 2):
        raise ValueError(f"audio must be (n,) or (n, 1|2) samples, got {samples.shape}")
    return samples


def _planar_chunk(samples: npt.NDArray[Any], start: int, end: int) -> npt.NDArray[np.float32]:
    """Samples start..end of (n, channels) `samples` as (channels, end - start) float32,
    clipped to [-1, 1], silence past the end of the track."""
    import numpy as np

    out = np.zeros((samples.shape[1], end - start), np.float32)
    have = max(0, min(end, samples.shape[0]) - start)
    if have:
        np.clip(samples[start : start + have].T, -1.0, 1.0, out=out[:, :have])
    return out


def write_mp4(
    path: str | os.PathLike[str],
    frames: Iterable[npt.NDArray[np.uint8]],
    *,
    fps: int,
    width: int,
    height: int,
    audio: npt.NDArray[Any] | None,
    sample_rate: int = 48000,
    preset: str = "veryfast",
    crf: int = 23,
    on_frame: Callable[[int], None] | None = None,
) -> VideoInfo:
    """Encode HxWx3 uint8 RGB `frames` to an MP4 at `path`; the number of frames sets the
    duration (N frames = N/fps s). `audio` (mono (n,) or (n, 2) float samples at
    `sample_rate`) is cut or padded with silence to that duration and interleaved with
    the video. `on_frame(count)` runs after each frame with the number written so far;
    whatever it raises aborts the encode and removes the partial file."""
    import av
    import cv2
    import numpy as np
    from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    path = Path(path)
    container = av.open(
        str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"}
    )
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # deterministic=1: the same frames give the same bytes on every run (x264's
        # threads otherwise make rate-control choices depend on timing); seed => same MP4.
        video.options = {"preset": preset, "crf": str(crf), "x264-params": "deterministic=1"}
        video.thread_type = "AUTO"
        video.thread_count = 0  # x264 picks from the core count
        context = video.codec_context
        context.colorspace = Colorspace.ITU601  # what COLOR_RGB2YUV_I420 computes
        context.color_range = ColorRange.MPEG
        context.color_primaries = ColorPrimaries.BT709  # sRGB inputs use BT.709 primaries
        context.color_trc = ColorTrc.BT709
        sound: Any = None
        if audio is not None:
            channels = 1 if audio.ndim == 1 else audio.shape[1]
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono" if channels == 1 else "stereo"
            sound.bit_rate = AUDIO_BITRATE
        written = 0
        audio_sent = 0
        # The caller's samples are read as they are: each AAC frame's worth is clipped
        # and made planar on its way to the encoder (no copy of the whole track), and the
        # silence that pads the track to the video's length is made the same way.
        source = None if audio is None else _audio_source(audio)

        def send_audio(samples: npt.NDArray[Any], upto: int, final: bool) -> None:
            # Whole AAC frames up to the video clock, so the muxer interleaves them;
            # only the very last frame may be short.
            nonlocal audio_sent
            while audio_sent + AUDIO_CHUNK <= upto or (final and audio_sent < upto):
                end = min(audio_sent + AUDIO_CHUNK, upto)
                chunk = av.AudioFrame.from_ndarray(
                    _planar_chunk(samples, audio_sent, end), format="fltp", layout=sound.layout
                )
                chunk.sample_rate, chunk.pts = sample_rate, audio_sent
                chunk.time_base = Fraction(1, sample_rate)
                container.mux(sound.encode(chunk))
                audio_sent = end

        # One yuv420p buffer for every frame: PyAV wraps it as it is, and x264 has copied
        # the picture into its own frame pool by the time `encode` returns.
        yuv = np.empty((height * 3 // 2, width), np.uint8)
        for frame_rgb in frames:
            if frame_rgb.shape != (height, width, 3):
                raise ValueError(f"frame {written} is {frame_rgb.shape}, not {(height, width, 3)}")
            cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2YUV_I420, dst=yuv)
            frame = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
            frame.pts = written
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
            del frame, frame_rgb  # the drawing side may reuse that frame's buffer now
            written += 1
            if source is not None:
                clock = written * sample_rate // fps
                send_audio(source, min(clock, source.shape[0]), final=False)
            if on_frame is not None:
                on_frame(written)
        if written == 0:
            raise ValueError("no frames to encode")
        if source is not None:
            # The rest up to the video's length (cut there, or padded with silence).
            send_audio(source, written * sample_rate // fps, final=True)
            container.mux(sound.encode(None))
        container.mux(video.encode(None))
        container.close()
        # x264's buffers are freed now: give them back before the probe allocates (a
        # demuxer and decoder context), or the probe adds to the encode's peak.
        release_heap()
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        path.unlink(missing_ok=True)
        raise
    return probe_mp4(path)


def probe_mp4(path: str | os.PathLike[str]) -> VideoInfo:
    """What a client would see of a finished MP4 (read with PyAV)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        sound = container.streams.audio[0] if container.streams.audio else None
        if video is not None and video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        else:
            duration = float((container.duration or 0) / av.time_base)
        rate = video.average_rate if video is not None else None
        return VideoInfo(
            duration=duration,
            width=video.codec_context.width if video is not None else 0,
            height=video.codec_context.height if video is not None else 0,
            fps=float(rate) if rate else 0.0,
            has_audio=sound is not None,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=sound.codec_context.name if sound is not None else None,
            file_size=os.path.getsize(path),
        )
