"""The plumbing every frame-drawing engine shares: at the start, fetch -> decode -> fit an
input image to the output size; at the end, draw frames on a background thread a few
ahead of x264 and encode + mux them, reporting progress and honouring cancellation.

Engines call these instead of each other (no engine imports another engine).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.engines.base import Context
    from kinema.render_request import MediaRef, RenderRequest

    Frame = npt.NDArray[np.uint8]

FPS = 25  # the local engines' frame rate
SAMPLE_RATE = 48000  # their audio rate (AAC at 48 kHz)
DEFAULT_SECONDS = 5.0  # a clip's length when the request leaves it open
# Drawn frames waiting for the encoder (2 x 6.2 MB at 1080p). Two absorb the jitter of
# drawing against x264: 4 were not measurably faster (motion, morph at 720p-1080p on 2
# cores) and held two more frames of memory.
PREFETCH_FRAMES = 2
# Buffers a drawing loop cycles through when it reuses them: the frames waiting in the
# prefetch queue, the one being encoded and the one being drawn (see `prefetch`).
RING_FRAMES = PREFETCH_FRAMES + 2


def frame_count(seconds: float | None, fps: int = FPS) -> int:
    return max(1, round((seconds if seconds is not None else DEFAULT_SECONDS) * fps))


def decode_input(ctx: Context, ref: MediaRef, request: RenderRequest) -> Frame:
    """Fetch one image input and decode it to RGB under the context's limits."""
    from kinema.media.images import decode_image

    return decode_image(
        ctx.fetch(ref),
        ref.field,
        request.image_rules,
        ctx.limits.max_image_pixels,
        ctx.limits.max_input_bytes,
    )


def fitted_input(ctx: Context, ref: MediaRef, request: RenderRequest) -> Frame:
    """Fetch, decode and fit one image to the request's output size (resolution, aspect
    or the image's own aspect snapped to the model's choices), keeping its faces in the
    picture when the shape changes (`kinema.media.framing`)."""
    from kinema.media.framing import frame_image
    from kinema.media.images import output_size

    rgb = decode_input(ctx, ref, request)
    width, height = output_size(
        request.short_side, request.aspect, request.aspect_choices, rgb.shape[1], rgb.shape[0]
    )
    return frame_image(rgb, width, height)


def fitted_pair(ctx: Context, request: RenderRequest) -> tuple[Frame, Frame]:
    """`fitted_input` for a first/last pair (`request.image`, `request.last_image`): the
    first image sets the output's shape, and both are fitted through one window so that
    what is kept of the picture does not jump between them."""
    from kinema.media.framing import frame_pair
    from kinema.media.images import output_size

    if request.image is None or request.last_image is None:
        raise ValueError("fitted_pair needs request.image and request.last_image")
    first = decode_input(ctx, request.image, request)
    width, height = output_size(
        request.short_side, request.aspect, request.aspect_choices, first.shape[1], first.shape[0]
    )
    ctx.check_cancelled()
    last = decode_input(ctx, request.last_image, request)
    return frame_pair(first, last, width, height)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(frames: Iterator[Frame], depth: int = PREFETCH_FRAMES) -> Generator[Frame, None, None]:
    """Produce `frames` on a background thread, at most `depth` ahead: OpenCV warps
    without the GIL, so the next frames are drawn while x264 encodes this one."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(_DONE)
        except BaseException as error:
            put(_Failed(error))

    worker = threading.Thread(target=produce, name="kinema-frames", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def encode(
    ctx: Context,
    frames: Iterator[Frame],
    count: int,
    width: int,
    height: int,
    audio: npt.NDArray[Any] | None = None,
    fps: int = FPS,
    sample_rate: int = SAMPLE_RATE,
    output: Path | None = None,
) -> None:
    """Draw `frames` ahead on a thread, encode them (+ `audio`) to the context's output,
    with progress per frame and cancellation checked between frames."""
    from kinema.media.encode import release_heap, write_mp4

    def on_frame(written: int) -> None:
        ctx.check_cancelled()
        ctx.progress(written / count)

    # What decoding and analysing the inputs freed goes back to the system before x264
    # allocates, and the encode's own memory after it (see release_heap).
    release_heap()
    produced = prefetch(frames)
    try:
        write_mp4(
            output or ctx.output_path, produced, fps=fps, width=width, height=height,
            audio=audio, sample_rate=sample_rate, on_frame=on_frame,
        )  # fmt: skip
    finally:
        produced.close()  # stops the drawing thread when the encode ends early
        release_heap()
