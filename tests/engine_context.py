"""Helpers for engine tests: the fake Context (`kinema.testing.FakeContext`: inputs from a
dict or data: URIs, progress recorded, cancellation on demand), data: URIs and pictures."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from kinema.testing import FakeContext

__all__ = ["EngineTestContext", "data_uri", "encode_image", "luma_psnr", "picture", "psnr"]

EngineTestContext = FakeContext  # the one fake Context, shipped in kinema.testing


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def picture(width: int, height: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A smooth test picture (gradients and discs): compresses well, so encoded frames
    stay close to their source, and has structure for motion to show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            128 + 100 * np.sin(x / 41.0 + seed),
            128 + 100 * np.cos(y / 29.0),
            128 + 100 * np.sin((x + y) / 57.0),
        ],
        axis=-1,
    )
    for _ in range(8):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        radius = rng.integers(max(4, min(width, height) // 12), max(8, min(width, height) // 4))
        image[(x - cx) ** 2 + (y - cy) ** 2 < radius**2] = rng.integers(0, 256, 3)
    pixels: npt.NDArray[np.uint8] = np.clip(image, 0, 255).astype(np.uint8)
    return pixels


def encode_image(array: npt.NDArray[np.uint8], fmt: str, mode: str = "RGB", **save: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, "RGB").convert(mode).save(out, fmt, **save)
    return out.getvalue()


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def luma_psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    """PSNR of brightness alone: yuv420p halves colour resolution, so on small test
    frames with saturated edges RGB PSNR measures chroma subsampling, not the encode."""
    weights = np.array([0.299, 0.587, 0.114])
    return psnr(np.rint(a @ weights).astype(np.uint8), np.rint(b @ weights).astype(np.uint8))
