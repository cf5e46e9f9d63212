"""The memory-bounding parts of the frame path: drawing loops that reuse a ring of buffers
(camera moves, the morph, the test card, the talking head's animator) still hand every
consumer the right pixels through the draw-ahead thread, the morph's strip-wise warp (its
flows kept at their analysis size and upsampled a strip at a time) equals a whole-frame
one, face models released after use load again, the encoder's reused yuv420p buffer and
its audio read from the caller's array a chunk at a time (cut, padded, clipped, the
array untouched) change nothing, and freed large blocks go back to the system when the
heap is released. Peak-RSS figures: `bench/memory.py`."""

from __future__ import annotations

import itertools
import platform
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from kinema.engines import morph
from kinema.media import camera
from kinema.media.encode import write_mp4
from kinema.media.pipeline import RING_FRAMES, prefetch
from tests.engine_context import luma_psnr, picture


def addresses(frames: list[np.ndarray]) -> set[int]:
    return {frame.__array_interface__["data"][0] for frame in frames}


@pytest.mark.parametrize(
    "move",
    [camera.Move(camera.ZOOM_OUT, 0.1), camera.Move(camera.ROLL, 3.0, -1)],
    ids=["zoom_out", "roll"],
)
def test_camera_frames_reuse_a_ring_and_stay_exact_through_prefetch(move: camera.Move) -> None:
    image = picture(192, 108, seed=3)
    count = 3 * RING_FRAMES + 1
    kept: list[np.ndarray] = []
    copies: list[np.ndarray] = []
    for frame in prefetch(camera.render_frames(image, move, count)):
        kept.append(frame)
        copies.append(frame.copy())  # what an encoder reads before asking for more
    # Each frame is what warping the still by that instant's camera gives, computed here
    # independently of the ring.
    margin = 0
    source = image
    if move.kind == camera.ZOOM_OUT:
        margin = int(np.ceil(max(192, 108) * move.amount / 2)) + 4
        source = camera._extended(image, margin)
    assert np.array_equal(copies[0], image)
    for index in range(1, count):
        matrix = camera.affine(
            *camera.camera(move, index / (count - 1), 192, 108), 192, 108, margin
        )
        expected = cv2.warpAffine(
            source, matrix, (192, 108), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        assert np.array_equal(copies[index], expected), index
    # The image itself plus RING_FRAMES buffers, however long the clip.
    assert len(addresses(kept)) == RING_FRAMES + 1


def test_extended_margin_is_mixed_in_strips_like_the_whole_image() -> None:
    image = picture(300, 200, seed=4)  # 200 + 2 * margin rows: not a multiple of the strip
    margin = 37
    extended = camera._extended(image, margin)
    padded = cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=max(2.0, margin / 4))
    ys = np.abs(np.arange(200 + 2 * margin) - (margin + 199 / 2)) - 199 / 2
    xs = np.abs(np.arange(300 + 2 * margin) - (margin + 299 / 2)) - 299 / 2
    outside = np.maximum(np.maximum(ys, 0)[:, None], np.maximum(xs, 0)[None, :])
    weight = np.clip(outside / (margin / 2), 0.0, 1.0)[:, :, None].astype(np.float32)
    whole = np.clip(padded * (1.0 - weight) + blurred * weight + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(extended, whole)
    assert np.array_equal(extended[margin:-margin, margin:-margin], image)


def test_morph_strips_give_the_whole_frame_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    first = picture(160, 150, seed=6)  # 150 rows: two full strips of 64 and a short one
    shift = np.float32([[1.04, 0, -5], [0, 1.04, -4]])
    last = cv2.warpAffine(first, shift, (160, 150), borderMode=cv2.BORDER_REFLECT_101)
    flows = morph.estimate_flows(first, last)
    assert flows is not None
    count = 2 * RING_FRAMES + 3
    monkeypatch.setattr(morph, "STRIP_PIXELS", 160 * 64)  # strips of 64 rows
    strips = [frame.copy() for frame in prefetch(morph.render_frames(first, last, flows, count))]
    monkeypatch.setattr(morph, "STRIP_PIXELS", 160 * 150)  # one strip: the whole frame
    whole = [frame.copy() for frame in morph.render_frames(first, last, flows, count)]
    assert len(strips) == len(whole) == count
    for index, (a, b) in enumerate(zip(strips, whole, strict=True)):
        assert np.array_equal(a, b), index
    assert np.array_equal(strips[0], first) and np.array_equal(strips[-1], last)
    # Consecutive frames differ (no buffer was overwritten before it was read).
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(strips[1:-1]))


@pytest.mark.parametrize(
    ("short_side", "flow_shape"),
    [(75, (75, 100, 2)), (40, (40, 53, 2))],
    ids=["whole_fraction_band_resize", "other_size_remap"],
)
def test_morph_flows_stay_small_and_are_upsampled_strip_by_strip_like_a_resize(
    monkeypatch: pytest.MonkeyPatch, short_side: int, flow_shape: tuple[int, int, int]
) -> None:
    first = picture(200, 150, seed=8)
    shift = np.float32([[1.05, 0, -6], [0, 1.05, -3]])
    last = cv2.warpAffine(first, shift, (200, 150), borderMode=cv2.BORDER_REFLECT_101)
    # 75: flows at 1/2 of 200x150 (the largest whole fraction with <= 75 rows); 40: 1/4
    # does not divide 150, so 40 rows on the short side.
    monkeypatch.setattr(morph, "FLOW_SHORT_SIDE", short_side)
    flows = morph.estimate_flows(first, last)
    assert flows is not None
    assert all(flow.shape == flow_shape and flow.dtype == np.float32 for flow in flows)
    # The strip upsampler samples where cv2.resize does (pixel centres): a strip of it is
    # that strip of the resized field, to OpenCV's 1/32-pixel interpolation steps (a
    # field sampled from the corners instead is off by ~0.4 of a step between pixels).
    up = morph._upsampler(flow_shape[:2], 200, 150)
    whole = cv2.resize(flows[0], (200, 150), interpolation=cv2.INTER_LINEAR)
    step = max(float(np.abs(np.diff(flows[0], axis=axis)).max()) for axis in (0, 1))
    for top, rows in ((0, 64), (64, 64), (128, 22), (37, 41)):
        strip = up(flows[0], top, rows, np.empty((rows, 200, 2), np.float32))
        assert strip.shape == (rows, 200, 2)
        assert np.abs(strip - whole[top : top + rows]).max() <= step / 32 + 1e-4, top
    # Strips of 64 rows, one strip: the same frames, bit for bit.
    count = 2 * RING_FRAMES + 3
    monkeypatch.setattr(morph, "STRIP_PIXELS", 200 * 64)
    strips = [frame.copy() for frame in prefetch(morph.render_frames(first, last, flows, count))]
    monkeypatch.setattr(morph, "STRIP_PIXELS", 200 * 150)
    single = [frame.copy() for frame in morph.render_frames(first, last, flows, count)]
    for index, (a, b) in enumerate(zip(strips, single, strict=True)):
        assert np.array_equal(a, b), index
    # And the motion is there: the middle frame is nearer the warped halfway picture
    # than the plain cross-fade of the two ends is.
    half = np.float32([[1.025, 0, -3], [0, 1.025, -1.5]])
    midway = cv2.warpAffine(first, half, (200, 150), borderMode=cv2.BORDER_REFLECT_101)
    middle = strips[count // 2]
    fade = cv2.addWeighted(first, 0.5, last, 0.5, 0.0)
    inner = (slice(20, 130), slice(20, 180))
    assert luma_psnr(middle[inner], midway[inner]) > luma_psnr(fade[inner], midway[inner])


def test_released_face_models_are_freed_and_load_again() -> None:
    import weakref

    from skimage import data

    from kinema.media import face_models, faces

    astronaut = np.ascontiguousarray(data.astronaut())
    found = faces.largest_face(astronaut)
    assert found is not None
    held = [weakref.ref(face_models.model(name)) for name in ("detector", "mesh")]
    face_models.release_models()
    assert all(ref() is None for ref in held)  # nothing else kept them alive
    again = faces.largest_face(astronaut)  # loaded again on use
    assert again is not None and again.box == found.box


def test_encoder_buffer_reuse_keeps_every_frame_and_pads_only_the_audio_tail(
    tmp_path: Path,
) -> None:
    canvas = picture(96 + 40, 64, seed=7)
    frames = [np.ascontiguousarray(canvas[:, i : i + 96]) for i in range(40)]
    rate = 48000
    voice = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float64)
    path = tmp_path / "clip.mp4"
    write_mp4(path, iter(frames), fps=25, width=96, height=64, audio=voice, preset="ultrafast")
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        container.seek(0)
        sound = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert len(decoded) == 40
    # Each decoded frame is its own source, not a neighbour's pixels.
    for index, frame in enumerate(decoded):
        own = luma_psnr(frame, frames[index])
        assert own > 35, index
        if index:
            assert own > luma_psnr(frame, frames[index - 1]) + 3, index
    # 1.6 s of audio: the 0.5 s tone, then silence (AAC's priming shifts it a little).
    assert abs(sound.size / rate - 1.6) < 0.05
    assert np.sqrt(np.mean(sound[rate // 10 : 4 * rate // 10] ** 2)) > 0.3
    assert np.abs(sound[7 * rate // 10 :]).max() < 1e-3


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="release_heap trims glibc's heap; other C libraries keep their own policy",
)
def test_release_heap_returns_freed_frames_to_the_system() -> None:
    # In a fresh interpreter: the test process's own heap (whatever earlier tests freed)
    # would serve the frames without growing, and the measure would say nothing.
    script = """
import numpy as np
from kinema.media.encode import release_heap

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

# Once a block this large is freed, glibc serves frames-sized blocks from its heap,
# and freeing them keeps them resident: what a worker did between jobs.
block = np.ones(24 << 20, np.uint8)
del block
before = resident()
frames = [np.ones((1080, 1920, 3), np.uint8) for _ in range(8)]  # 50 MB
grown = resident()
del frames
release_heap()
print(before, grown, resident())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    before, grown, released = (int(value) for value in out)
    assert grown > before + 40e6
    assert released < before + 8e6


def test_encoder_reads_the_callers_audio_in_chunks_cut_clipped_and_untouched(
    tmp_path: Path,
) -> None:
    # Stereo, longer than the video and louder than full scale: the clip keeps the
    # video's length, both channels as they were, clipped, and the caller's array is
    # left as it was (each AAC frame's samples are clipped on their way out).
    rate = 48000
    tone = 1.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    stereo = np.stack([tone, np.zeros(rate)], axis=1)
    before = stereo.copy()
    frames = [picture(64, 64, seed=i) for i in range(10)]  # 0.4 s at 25 fps
    path = tmp_path / "stereo.mp4"
    write_mp4(path, iter(frames), fps=25, width=64, height=64, audio=stereo, preset="ultrafast")
    assert np.array_equal(stereo, before)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].channels == 2
        sound = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert abs(sound.shape[1] / rate - 0.4) < 0.05
    left, right = sound[0, rate // 20 : rate // 4], sound[1, rate // 20 : rate // 4]
    assert np.sqrt(np.mean(left**2)) > 0.6  # a clipped sine of peak 1 (rms ~0.8)
    assert np.abs(left).max() < 1.15  # clipped to full scale (AAC overshoots a little)
    assert np.abs(right).max() < 1e-3


def test_talking_head_frames_reuse_a_ring_and_stay_exact_through_prefetch() -> None:
    from skimage import data

    from kinema.media import faces
    from kinema.media.face_anim import FaceAnimator, MouthTrack

    astronaut = np.ascontiguousarray(data.astronaut()[::2, ::2])
    face = faces.largest_face(astronaut)
    assert face is not None
    count = 3 * RING_FRAMES + 1
    opening = (0.5 + 0.5 * np.sin(np.arange(count) / 2.0)).astype(np.float32)
    track = MouthTrack(opening, np.zeros(count, np.float32), np.zeros(count, np.float32))
    kept: list[np.ndarray] = []
    copies: list[np.ndarray] = []
    for frame in prefetch(iter(FaceAnimator(astronaut, face, seed=5).frames(track))):
        kept.append(frame)
        copies.append(frame.copy())
    # Each frame, drawn one at a time by a fresh animator with the same seed and copied
    # at once, is the same: a buffer is reused only once the encoder is done with it.
    for index, frame in enumerate(FaceAnimator(astronaut, face, seed=5).frames(track)):
        assert np.array_equal(copies[index], frame), index
    assert len(addresses(kept)) == RING_FRAMES  # however long the clip
    assert not all(np.array_equal(copies[0], c) for c in copies[1:])  # the mouth moves
