"""What is derived from a finished video: its poster (a thumbnail of a representative
frame, WebP) and its spritesheet (a grid of evenly spaced frames, JPEG), both made when
first asked for (`poster_store.PosterMaker`), its last frame (what an extension continues from) and
the stitched whole of a video and its continuation.

Everything streams: frames are decoded one at a time with PyAV and only the few kept
(spritesheet tiles, the best poster candidate, the frame being encoded) stay in memory,
so a long 1080p video costs no more memory than a short one. Audio of a stitched video is
held as float samples (seconds of it are small next to frames).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.media.encode import VideoInfo
    from kinema.storage import BlobStorage

log = logging.getLogger("kinema.media")

THUMBNAIL_MAX_SIDE = 1280  # the poster's long side (smaller videos keep their size)
THUMBNAIL_QUALITY = 82
TILE_SHORT_SIDE = 144  # a spritesheet tile: 256x144 for 16:9
SPRITE_COLUMNS = 5
MIN_TILES, MAX_TILES = 4, 25  # about one tile per second of video, within these bounds
SPRITE_QUALITY = 80
SAMPLE_RATE = 48000  # a stitched video's audio
BLOB_TIMEOUT_SECONDS = 300.0

THUMBNAIL_TYPE, SPRITESHEET_TYPE = "image/webp", "image/jpeg"


@dataclass(frozen=True)
class Posters:
    thumbnail: Path  # WebP
    spritesheet: Path  # JPEG, `columns` x `rows` tiles of `tile_width` x `tile_height`
    columns: int
    rows: int
    tile_width: int
    tile_height: int


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def scaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is `short_side` (never enlarged)."""
    short = min(width, height)
    factor = min(1.0, short_side / short) if short else 1.0
    return _even(width * factor), _even(height * factor)


def _duration(container: Any, stream: Any) -> float:
    import av

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return float((container.duration or 0) / av.time_base)


def _interest(tile: npt.NDArray[np.uint8], position: float) -> float:
    """How well a frame stands for the video: detail (luma spread), not a black or blown
    frame, and a mild preference for the middle over the first and last moments."""
    luma = tile.mean(axis=2)
    mean = float(luma.mean()) / 255.0
    exposure = 1.0 if 0.08 < mean < 0.92 else 0.2
    middle = 1.0 - 0.3 * abs(position - 0.5)
    return float(luma.std()) * exposure * middle + 1e-6 * middle


def _skipping(
    video: Path, times: list[float], slice_seconds: float
) -> Literal["DEFAULT", "NONREF", "NONKEY"]:
    """Which frames the decoder may skip, from the packets alone (no decoding): "NONKEY"
    (key frames only) when every tile's slice of the video holds a key frame, else
    "NONREF" (frames nothing else refers to, such as most B-frames: about half of an x264
    stream), "DEFAULT" where packets lack timestamps (times are then counted in frames,
    which skipping would falsify)."""
    import av

    keys: list[float] = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                continue
            if packet.pts is None or stream.time_base is None:
                return "DEFAULT"
            if packet.is_keyframe:
                keys.append(float(packet.pts * stream.time_base))
    keys.sort()
    for moment in times:
        at = bisect.bisect_left(keys, moment - slice_seconds / 2)
        if at == len(keys) or keys[at] > moment + slice_seconds / 2:
            return "NONREF"
    return "NONKEY"


def make_posters(video: Path, out_dir: Path, *, skip_frames: bool = True) -> Posters:
    """The poster and the spritesheet of `video`, written in `out_dir`, in one decoding
    pass: tiles are the frames nearest to evenly spaced times (the middle of each slice of
    the video), and the tile that stands for the video best becomes the poster, at full
    size. Only the frames that can matter are decoded (`_skipping`): key frames alone
    where there are enough, else the reference frames (`skip_frames=False` decodes every
    frame: the benchmark's baseline)."""
    import av
    import numpy as np
    from PIL import Image

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        duration = max(_duration(container, stream), 1e-3)
        count = min(MAX_TILES, max(MIN_TILES, math.ceil(duration)))
        columns = min(SPRITE_COLUMNS, count)
        rows = math.ceil(count / columns)
        tile_w, tile_h = scaled(width, height, TILE_SHORT_SIDE)
        sheet = np.zeros((rows * tile_h, columns * tile_w, 3), np.uint8)
        times = [(index + 0.5) * duration / count for index in range(count)]
        if skip_frames:
            stream.codec_context.skip_frame = _skipping(video, times, duration / count)
        best: Any = None
        best_score = -1.0
        taken, last, last_moment = 0, None, 0.0
        rate = float(stream.average_rate or 25)

        def take(frame: Any) -> None:
            nonlocal taken, best_score, best
            tile = frame.to_ndarray(format="rgb24", width=tile_w, height=tile_h)
            row, column = divmod(taken, columns)
            sheet[row * tile_h : (row + 1) * tile_h, column * tile_w : (column + 1) * tile_w] = tile
            score = _interest(tile, times[taken] / duration)
            if score > best_score:
                best_score, best = score, frame
            taken += 1

        for decoded, frame in enumerate(container.decode(stream)):
            moment = frame.time if frame.time is not None else decoded / rate
            while taken < count and moment >= times[taken]:
                # The nearer of this frame and the one before (frames may be sparse).
                before = last is not None and times[taken] - last_moment < moment - times[taken]
                take(last if before else frame)
            last, last_moment = frame, moment
        while last is not None and taken < count:  # shorter than its header said
            take(last)
        if best is None:
            raise ValueError(f"{video.name} has no video frames")
        thumb_w, thumb_h = scaled(width, height, min(width, height))
        if max(thumb_w, thumb_h) > THUMBNAIL_MAX_SIDE:
            factor = THUMBNAIL_MAX_SIDE / max(thumb_w, thumb_h)
            thumb_w, thumb_h = _even(thumb_w * factor), _even(thumb_h * factor)
        poster = best.to_ndarray(format="rgb24", width=thumb_w, height=thumb_h)
    out_dir.mkdir(parents=True, exist_ok=True)
    thumbnail = out_dir / f"{video.stem}.thumbnail.webp"
    spritesheet = out_dir / f"{video.stem}.spritesheet.jpg"
    Image.fromarray(poster).save(thumbnail, "WEBP", quality=THUMBNAIL_QUALITY, method=2)
    Image.fromarray(sheet).save(spritesheet, "JPEG", quality=SPRITE_QUALITY, optimize=True)
    return Posters(thumbnail, spritesheet, columns, rows, tile_w, tile_h)


def last_frame(video: Path) -> npt.NDArray[np.uint8]:
    """The video's last frame (RGB): decoded from the key frame before its final two
    seconds, not from the start."""
    import av

    for seek in (True, False):
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            duration = _duration(container, stream)
            if seek and duration > 2.0 and stream.time_base is not None:
                target = int((duration - 2.0) / stream.time_base)
                with contextlib.suppress(av.error.FFmpegError):
                    container.seek(target, stream=stream, backward=True)
            frame = None
            for frame in container.decode(stream):  # noqa: B007 - the last one is wanted
                pass
            if frame is not None:
                image: Any = frame.to_ndarray(format="rgb24")
                return cast("npt.NDArray[np.uint8]", image)
    raise ValueError(f"{video.name} has no video frames")


def jpeg(rgb: npt.NDArray[np.uint8], quality: int = 95) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


# ---------------------------------------------------------------------------- stitching
def _frames(path: Path, fps: int, count: int, width: int, height: int) -> Iterator[Any]:
    """Exactly `count` RGB frames of `path` at `fps` (a frame repeats or is skipped where
    the rates differ), fitted to `width` x `height`."""
    import av

    from kinema.media.images import fit_image

    def convert(frame: Any) -> Any:
        if frame.width == width and frame.height == height:
            return frame.to_ndarray(format="rgb24")
        return fit_image(frame.to_ndarray(format="rgb24"), width, height)

    emitted, current = 0, None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or fps)
        for decoded, frame in enumerate(container.decode(stream)):
            moment = frame.time if frame.time is not None else decoded / rate
            while current is not None and emitted < count and emitted / fps < moment - 1e-6:
                yield current
                emitted += 1
            if emitted >= count:
                return
            current = convert(frame)
    while current is not None and emitted < count:
        yield current
        emitted += 1


def _audio(path: Path, samples: int) -> npt.NDArray[np.float32]:
    """`path`'s audio as (samples, 2) float32 at SAMPLE_RATE; silence where it has none."""
    import av
    import numpy as np

    out = np.zeros((samples, 2), np.float32)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return out
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        filled = 0

        def put(frames: list[Any]) -> None:
            nonlocal filled
            for frame in frames:
                data = frame.to_ndarray()
                n = min(data.shape[1], samples - filled)
                if n > 0:
                    out[filled : filled + n] = data[:2, :n].T
                    filled += n

        for frame in container.decode(container.streams.audio[0]):
            put(resampler.resample(frame))
        put(resampler.resample(None))
    return out


def stitch(parts: list[Path], out: Path) -> VideoInfo:
    """One MP4 of `parts` played one after the other, at the first part's size and frame
    rate (later parts are fitted to it); sound where any part has sound."""
    import numpy as np

    from kinema.media.encode import probe_mp4, write_mp4

    infos = [probe_mp4(part) for part in parts]
    first = infos[0]
    fps = max(1, round(first.fps or 25))
    counts = [max(1, round(info.duration * fps)) for info in infos]
    audio = None
    if any(info.has_audio for info in infos):
        lengths = [count * SAMPLE_RATE // fps for count in counts]
        audio = np.concatenate(
            [_audio(part, samples) for part, samples in zip(parts, lengths, strict=True)]
        )

    def frames() -> Iterator[Any]:
        for part, count in zip(parts, counts, strict=True):
            yield from _frames(part, fps, count, first.width, first.height)

    return write_mp4(
        out, frames(), fps=fps, width=first.width, height=first.height, audio=audio,
        sample_rate=SAMPLE_RATE,
    )  # fmt: skip


# ---------------------------------------------------------------------------- blobs
@contextlib.contextmanager
def blob_file(storage: BlobStorage, key: str, directory: Path) -> Iterator[Path]:
    """A local file with the stored object `key`: the file itself on local storage, else a
    streamed copy in `directory` (removed afterwards). FileNotFoundError if it is gone."""
    import httpx

    from kinema.storage import LocalStorage

    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path
        return
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"blob-{uuid.uuid4().hex}{Path(key).suffix}"
    try:
        url = storage.url(key, 900, "http://localhost/")
        with httpx.stream("GET", url, timeout=BLOB_TIMEOUT_SECONDS) as response:
            if response.status_code in (403, 404):
                raise FileNotFoundError(key)
            response.raise_for_status()
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
        yield target
    finally:
        target.unlink(missing_ok=True)


def stitched_onto(source_key: str, video: Path, storage: BlobStorage) -> Path:
    """`video` played after the stored video `source_key` (an extension delivered whole),
    written beside `video`. FileNotFoundError if the stored video is gone."""
    out = video.with_name(f"{video.stem}.stitched.mp4")
    with blob_file(storage, source_key, video.parent) as source:
        stitch([source, video], out)
    return out
