"""Input videos (`pixverse/lip-sync`'s `video_url`): recognised by their bytes, checked
against size, length and pixel caps from the container alone, then decoded one frame at a
time, resampled to the output frame rate and scaled to the output size.

Safety: the demuxer is chosen from the sniffed format (an MP4 is never handed to some
more exotic FFmpeg demuxer), only common camera/web codecs are decoded, the length is
measured by reading packets (no decoding) before any frame is decoded, and every FFmpeg
failure, wherever it happens, is an `InputError` naming the field.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinema.errors import InputError
from kinema.media.sniff import sniff_video

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

_DISPLAY = {"mp4": "MP4", "mov": "MOV", "webm": "WebM"}
_DEMUXER = {"mp4": "mp4", "mov": "mov", "webm": "webm"}
# What phones, cameras, screen recorders and browsers write; anything else is refused
# before a decoder sees it.
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores", "mjpeg"})
MAX_VIDEO_PIXELS = 3840 * 2160  # per frame (4K UHD)
MAX_SIDE = 4096
MIN_SIDE = 16
MAX_SOURCE_FPS = 240  # packets per second of the allowed length, at most
LENGTH_TOLERANCE_S = 0.1  # container rounding: a 30 s clip may measure 30.04 s
TRUNCATED = 0.95  # packets covering less of the length the header declares: cut short


@dataclass(frozen=True)
class VideoProbe:
    format: str  # "mp4" | "mov" | "webm"
    codec: str
    width: int
    height: int
    seconds: float  # from the first packet's start to the end of the last
    fps: float  # the source's average frame rate (0 when unknown)


def _open(data: bytes, field: str) -> tuple[Any, str]:
    import av

    fmt = sniff_video(data)
    if fmt is None:
        raise InputError(field, "is not a supported video (MP4, MOV or WebM)")
    try:
        container = av.open(io.BytesIO(data), mode="r", format=_DEMUXER[fmt])
    except (av.FFmpegError, ValueError, OSError):
        raise InputError(field, f"could not be read as a {_DISPLAY[fmt]} video") from None
    if not container.streams.video:
        container.close()
        raise InputError(field, f"the {_DISPLAY[fmt]} file contains no video stream")
    return container, fmt


def inspect_video(data: bytes, field: str, max_seconds: float | None) -> VideoProbe:
    """Format, codec, size and length of an input video, from its headers and packets
    only (cheap: nothing is decoded). Raises InputError naming `field` when the video is
    unsupported, malformed, too large in pixels or longer than `max_seconds`."""
    import av

    container, fmt = _open(data, field)
    name = _DISPLAY[fmt]
    with container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        if codec not in CODECS:
            raise InputError(
                field, f"the {name} video is encoded as {codec}; supported: "
                "H.264, HEVC, VP8, VP9, AV1, MPEG-4, ProRes or Motion JPEG",
            )  # fmt: skip
        if min(width, height) < MIN_SIDE:
            raise InputError(field, f"the video is {width}x{height}; too small to show a face")
        if width * height > MAX_VIDEO_PIXELS or max(width, height) > MAX_SIDE:
            raise InputError(
                field, f"the video is {width}x{height}; at most 3840x2160 pixels are accepted"
            )
        limit = math.inf if max_seconds is None else max_seconds + LENGTH_TOLERANCE_S
        max_packets = limit * MAX_SOURCE_FPS + 16  # a flood of tiny packets is no video
        base = stream.time_base
        start = end = None
        packets = 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                packets += 1
                begin = float(packet.pts * base)
                finish = begin + float((packet.duration or 0) * base)
                start = begin if start is None else min(start, begin)
                end = finish if end is None else max(end, finish)
                if end - start > limit or packets > max_packets:
                    raise InputError(
                        field, f"the video is longer than {max_seconds:g} s, this model's limit"
                    )
        except av.FFmpegError:
            raise InputError(field, f"the {name} video is damaged or truncated") from None
        if start is None or end is None or packets == 0:
            raise InputError(field, f"the {name} file contains no video frames")
        rate = stream.average_rate
        fps = float(rate) if rate else 0.0
        seconds = end - start
        if seconds <= 0:  # a single frame, or packets without durations
            seconds = packets / fps if fps else 0.0
        if seconds <= 0:
            raise InputError(field, f"the {name} video has no measurable length")
        declared = float(stream.duration * base) if stream.duration else None
        if declared is not None and seconds < declared * TRUNCATED - 2 / max(fps, 1.0):
            raise InputError(
                field, f"the {name} video is truncated: {seconds:.1f} s of its "
                f"{declared:.1f} s are in the file",
            )  # fmt: skip
    return VideoProbe(fmt, codec, width, height, seconds, fps)


def output_size(width: int, height: int, max_short_side: int) -> tuple[int, int]:
    """The input's size scaled down (never up) to `max_short_side`, with even sides for
    yuv420p."""
    scale = min(1.0, max_short_side / min(width, height))
    out_w, out_h = round(width * scale), round(height * scale)
    return max(2, out_w - out_w % 2), max(2, out_h - out_h % 2)


def frame_count(probe: VideoProbe, fps: int) -> int:
    return max(1, round(probe.seconds * fps))


def video_frames(
    data: bytes, field: str, width: int, height: int, count: int, fps: int
) -> Iterator[Frame]:
    """Exactly `count` RGB frames of `width` x `height` at `fps`, decoded one at a time:
    output frame i shows the source frame on screen at i / fps (the last one decoded
    before it), so any source rate (or a variable one) comes out at `fps`. Only the frame
    on screen is held, never the clip."""
    import av
    import cv2
    import numpy as np

    container, fmt = _open(data, field)
    damaged = f"the {_DISPLAY[fmt]} video is damaged or could not be decoded"
    shown: Any = None  # the av.VideoFrame on screen
    shown_rgb: Frame | None = None
    emitted = 0
    origin: float | None = None

    def rgb_of(frame: Any) -> Frame:
        picture = frame.to_ndarray(format="rgb24")
        if picture.shape[:2] != (height, width):
            picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(picture, dtype=np.uint8)

    try:
        with container:
            stream = container.streams.video[0]
            # Slice threads only: frame threads hold a decoder context and frames per
            # thread (~10 MB at 1080p) and, with x264 busy on every core, were slower
            # (dubbing 1080p: 3.4-3.5 s against 2.9-3.0 s, bench/memory.py).
            stream.thread_type = "SLICE"
            rate = float(stream.average_rate or fps)
            for index, frame in enumerate(container.decode(stream)):
                when = frame.time if frame.time is not None else index / rate
                origin = when if origin is None else origin
                # Every output frame due before this source frame shows the previous one.
                starts = when - origin - 1e-3
                while shown is not None and emitted < count and emitted / fps < starts:
                    if shown_rgb is None:
                        shown_rgb = rgb_of(shown)
                    yield shown_rgb
                    emitted += 1
                if emitted >= count:
                    break
                shown, shown_rgb = frame, None
    except av.FFmpegError:
        raise InputError(field, damaged) from None
    if shown is None:
        raise InputError(field, damaged)
    last = shown_rgb if shown_rgb is not None else rgb_of(shown)
    while emitted < count:  # the last frame holds to the end of the clip
        yield last
        emitted += 1
