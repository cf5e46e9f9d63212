"""Input images: check them cheaply from their header, decode them to RGB, size the output.

`inspect_image` runs in the API process at submit time (data: URIs) and in the worker, so
it reads only the header: Pillow opens images lazily and we refuse oversized ones before
anything calls `load()`, which is what makes a decompression bomb harmless here.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinema.errors import InputError
from kinema.media.sniff import IMAGE_FORMATS, sniff_image
from kinema.render_request import ImageRules

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

# Format names as people write them, and Pillow's plugin name for each sniffed format.
_DISPLAY = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# EXIF orientations 5-8 are transposed/rotated by 90°, so width and height swap.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
# Without an explicit aspect, extreme images are clamped to this range of output shapes.
_MIN_OWN_ASPECT = 9 / 21
_MAX_OWN_ASPECT = 21 / 9


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png", "jpeg" or "webp"
    width: int  # as displayed, i.e. after EXIF orientation
    height: int


def _format_list(formats: tuple[str, ...]) -> str:
    names = [_DISPLAY.get(f, f.upper()) for f in formats]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _open_lazily(data: bytes, fmt: str, field: str, max_pixels: int) -> Image.Image:
    """Open `data` with only the sniffed format's plugin, reading just the header."""
    from PIL import Image

    # Pillow's own bomb guard warns above MAX_IMAGE_PIXELS and raises above twice that.
    # Keep it at least as high as our cap (so it never refuses what we accept) and turn
    # its warning into a refusal: either way nothing over the cap reaches a decoder.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            field, f"image has more than {max_pixels:,} pixels, the most this server decodes"
        ) from None
    except Exception:
        raise InputError(
            field, f"could not be decoded as a {_DISPLAY[fmt]} image (corrupt or truncated)"
        ) from None


def _check_rules(width: int, height: int, field: str, rules: ImageRules) -> None:
    short = min(width, height)
    if short <= rules.min_short_side:
        raise InputError(
            field,
            f"image is {width}×{height}; its shorter side must be larger than "
            f"{rules.min_short_side} px",
        )
    aspect = width / height
    if not rules.min_aspect < aspect < rules.max_aspect:
        bounds = f"between {rules.min_aspect:.3g} and {rules.max_aspect:.3g} (exclusive)"
        raise InputError(
            field,
            f"image is {width}×{height} (aspect ratio {aspect:.3g}); the aspect ratio "
            f"(width / height) must be {bounds}",
        )


def inspect_image(
    data: bytes, field: str, rules: ImageRules, max_pixels: int, max_bytes: int
) -> ImageInfo:
    """Check an input image against the server limits and the model's rules, reading
    only its header. Raises InputError(field, ...) saying what is wrong."""
    if len(data) > max_bytes:
        raise InputError(field, f"image is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    fmt = sniff_image(data)
    if fmt is None:
        raise InputError(field, f"not a recognised image ({_format_list(IMAGE_FORMATS)})")
    if fmt not in rules.formats:
        raise InputError(
            field, f"expected a {_format_list(rules.formats)} image, got {_DISPLAY[fmt]}"
        )
    image = _open_lazily(data, fmt, field, max_pixels)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(field, f"image has an impossible size {width}×{height}")
    if width * height > max_pixels:
        raise InputError(
            field,
            f"image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}",
        )
    # JPEG and WebP carry EXIF in their header; PNG's getexif() would decode the whole
    # image to look for a trailing eXIf chunk, so PNG only counts EXIF seen so far.
    if "exif" in image.info:
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # malformed EXIF: decoders ignore it, so do we
            orientation = None
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    _check_rules(width, height, field, rules)
    return ImageInfo(format=fmt, width=width, height=height)


def _to_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Any Pillow mode -> HxWx3 uint8 RGB; transparency is composited on white."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale PNG. Pillow's own I -> L conversion clips at 255 instead of
        # scaling, which would turn most of the picture white.
        values = np.asarray(image, dtype=np.float32)
        gray = np.clip(values / 257 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, F
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def decode_image(
    data: bytes, field: str, rules: ImageRules, max_pixels: int, max_bytes: int
) -> npt.NDArray[np.uint8]:
    """Check, then decode an input image to an upright HxWx3 uint8 RGB array."""
    from PIL import ImageOps

    info = inspect_image(data, field, rules, max_pixels, max_bytes)
    image = _open_lazily(data, info.format, field, max_pixels)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        rgb = _to_rgb(upright)
    except Exception:
        raise InputError(
            field,
            f"could not be decoded as a {_DISPLAY[info.format]} image (corrupt or truncated)",
        ) from None
    # A PNG's EXIF can sit after the pixels, unseen by inspect_image: check the final shape.
    _check_rules(rgb.shape[1], rgb.shape[0], field, rules)
    return rgb


def _parse_aspect(aspect: str) -> float:
    width, _, height = aspect.partition(":")
    return float(width) / float(height)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def output_size(
    short_side: int,
    aspect: str | None,
    aspect_choices: tuple[str, ...],
    image_w: int,
    image_h: int,
) -> tuple[int, int]:
    """(width, height) of the video: the requested aspect ("16:9"), else the choice
    nearest the image's own aspect, else the image's aspect clamped to [9:21, 21:9].
    The short side is `short_side`; both sides are even, as yuv420p requires."""
    own = image_w / image_h
    if aspect is not None:
        ratio = _parse_aspect(aspect)
    elif aspect_choices:
        # Nearest in log space, so 2:1 and 1:2 are equally far from 1:1.
        ratio = min(
            (_parse_aspect(choice) for choice in aspect_choices),
            key=lambda r: abs(math.log(r / own)),
        )
    else:
        ratio = min(max(own, _MIN_OWN_ASPECT), _MAX_OWN_ASPECT)
    short = _even(short_side)
    if ratio >= 1:
        return _even(short * ratio), short
    return short, _even(short / ratio)


def fit_image(rgb: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Cover `width`x`height`: centre-crop to the target aspect, then resize (area
    averaging when shrinking, which avoids aliasing; bicubic when enlarging)."""
    import cv2
    import numpy as np

    src_h, src_w = rgb.shape[:2]
    target = width / height
    if src_w / src_h > target:
        crop_w, crop_h = max(1, round(src_h * target)), src_h
    else:
        crop_w, crop_h = src_w, max(1, round(src_w / target))
    x0, y0 = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    cropped = rgb[y0 : y0 + crop_h, x0 : x0 + crop_w]
    if (crop_w, crop_h) == (width, height):
        return np.ascontiguousarray(cropped)
    shrinking = crop_w * crop_h > width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(
        np.ascontiguousarray(cropped), (width, height), interpolation=interpolation
    )
    return resized.astype(np.uint8, copy=False)
