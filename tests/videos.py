"""Checks on real MP4 files with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import httpx

FPS = 25


@dataclass
class Probe:
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool


def probe(path: Path) -> Probe:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        has_audio = bool(container.streams.audio)
        duration = float(container.duration or 0) / 1_000_000
        return Probe(
            codec=video.codec_context.name,
            pix_fmt=video.codec_context.pix_fmt,
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=float(video.average_rate or 0),
            frames=frames,
            duration=duration,
            has_audio=has_audio,
        )


def download(url: str, target: Path, client: httpx.Client | None = None) -> Path:
    """Fetch a video URL into `target`: over the network, or through `client` (an
    in-process one answers `http://kinema.test/files/...` links itself)."""
    stream = httpx.stream("GET", url, timeout=60) if client is None else client.stream("GET", url)
    with stream as response:
        response.raise_for_status()
        assert response.headers["content-type"] == "video/mp4"
        with open(target, "wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    return target


def assert_video(
    path: Path, *, seconds: float, short_side: int, audio: bool, aspect: float | None = None
) -> Probe:
    p = probe(path)
    assert p.codec == "h264", p
    assert p.pix_fmt == "yuv420p", p
    assert abs(p.fps - FPS) < 0.01, p
    assert abs(p.frames - round(seconds * FPS)) <= 1, p
    assert abs(p.duration - seconds) <= 1 / FPS + 0.03, p
    assert min(p.width, p.height) == short_side, p
    assert p.has_audio == audio, p
    if aspect is not None:
        assert abs(p.width / p.height - aspect) < 0.02, p
    return p
