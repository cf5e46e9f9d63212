"""Looks for `style`: classic non-photorealistic rendering with OpenCV and numpy, no weights.

Each style is a short pipeline of well-known image operations (edge-preserving smoothing,
palette quantisation, line extraction, halftoning, tone mapping), tuned so the five looks
differ clearly while the picture stays recognisable. The costly filters (smoothing,
mean-shift, k-means) run on a reduced copy (`_WORK_SIDE` px on its long side, less for
mean-shift) and are upsampled, which bounds the time (a 1080p still takes a fraction of a
second on 2 cores) and makes a style look the same whatever the input resolution. Lines,
dots and textures are drawn at full resolution, sized relative to the short side, and
anti-aliased: the motion engine warps the styled still frame after frame, and hard 1-px
detail would shimmer under its sub-pixel resampling (for the same reason there are no
scanlines: a 2-3 px line pattern aliases into moiré as soon as the camera zooms).
Everything random comes from `seed`, so one input and seed always give the same pixels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Image = npt.NDArray[np.uint8]
    Floats = npt.NDArray[np.float32]

_Array = TypeVar("_Array", "npt.NDArray[np.uint8]", "npt.NDArray[np.float32]")

STYLES = ("anime", "3d_animation", "clay", "comic", "cyberpunk")
_WORK_SIDE = 640  # long side of the copy the expensive filters run on
_CHROMA_WEIGHT = 2.0  # of Lab a/b against lightness, when clustering colours


def _u8(array: object) -> Image:
    """An OpenCV result as a typed array (its type hints only promise "a Mat or some numeric
    array"); no copy when it already is uint8, as OpenCV's results here are."""
    import numpy as np

    return np.asarray(array, dtype=np.uint8)


def _f32(array: object) -> Floats:
    import numpy as np

    return np.asarray(array, dtype=np.float32)


def _resize(image: _Array, width: int, height: int) -> _Array:
    import cv2
    import numpy as np

    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    return np.asarray(resized, dtype=image.dtype)


def _work_copy(rgb: Image, long_side: int = _WORK_SIDE) -> Image:
    height, width = rgb.shape[:2]
    scale = min(1.0, long_side / max(width, height))
    return _resize(rgb, max(1, round(width * scale)), max(1, round(height * scale)))


def _floats(rgb: Image) -> Floats:
    import numpy as np

    return rgb.astype(np.float32) * np.float32(1 / 255)


def _bytes(rgb: Floats) -> Image:
    import numpy as np

    out: Image = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def _luma(rgb: Floats) -> Floats:
    import numpy as np

    luma: Floats = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return luma


def _saturate(rgb: Floats, amount: float) -> Floats:
    """Scale each pixel's distance from its grey by `amount` (1 = unchanged)."""
    grey = _luma(rgb)[:, :, None]
    out: Floats = grey + (rgb - grey) * amount
    return out


def _blur(image: Floats, sigma: float) -> Floats:
    import cv2

    return _f32(cv2.GaussianBlur(image, (0, 0), sigmaX=max(sigma, 0.1)))


def _grid(height: int, width: int) -> tuple[Floats, Floats]:
    """Pixel x and y coordinates, as broadcastable (1, W) and (H, 1) arrays."""
    import numpy as np

    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    return xs, ys


def _smooth_noise(height: int, width: int, cells: int, rng: np.random.Generator) -> Floats:
    """Smooth value noise in about [-1, 1] with `cells` features across the short side."""
    import cv2
    import numpy as np

    short = min(height, width)
    grid_h = max(2, round(cells * height / short))
    grid_w = max(2, round(cells * width / short))
    coarse = rng.uniform(-1, 1, (grid_h, grid_w)).astype(np.float32)
    return _f32(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))


def _kmeans_palette(rgb: Image, colours: int, seed: int) -> Image:
    """`rgb` with every pixel replaced by the nearest of `colours` k-means centres, found
    in Lab (so the palette follows perceived, not RGB, distances) on a seeded sample.
    Chroma counts double: otherwise the clusters mostly split lightness, and a pale
    face ends up in the same grey as a pale wall."""
    import cv2
    import numpy as np

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    lab[:, 1:] = (lab[:, 1:] - 128) * _CHROMA_WEIGHT
    rng = np.random.default_rng(seed)
    sample = lab[rng.choice(len(lab), size=min(len(lab), 5000), replace=False)]
    # k-means++ seeding spreads the first centres, which keeps small vivid areas (eyes,
    # signs) from being swallowed by a big background cluster.
    palette = np.empty((colours, 3), np.float32)
    palette[0] = sample[rng.integers(len(sample))]
    nearest = ((sample - palette[0]) ** 2).sum(1)
    for index in range(1, colours):
        total = float(nearest.sum())
        pick = rng.choice(len(sample), p=nearest / total) if total > 0 else 0
        palette[index] = sample[pick]
        nearest = np.minimum(nearest, ((sample - palette[index]) ** 2).sum(1))

    def assign(points: Floats) -> npt.NDArray[np.intp]:
        # ||x - c||² = ||x||² - 2 x·c + ||c||², and ||x||² is the same for every centre.
        # Summed channel by channel in place: 3x faster than a matmul with 3 columns.
        scores = np.repeat((palette**2).sum(1)[None, :], len(points), axis=0)
        for channel in range(3):
            scores += points[:, channel, None] * (palette[:, channel] * -2)
        labels: npt.NDArray[np.intp] = scores.argmin(1)
        return labels

    for _ in range(8):
        labels = assign(sample)
        counts = np.bincount(labels, minlength=colours)[:, None]
        sums = np.stack(
            [np.bincount(labels, weights=sample[:, c], minlength=colours) for c in range(3)], 1
        )
        palette = np.where(counts > 0, sums / np.maximum(counts, 1), palette).astype(np.float32)
    labels = assign(lab)
    palette[:, 1:] = palette[:, 1:] / _CHROMA_WEIGHT + 128
    flat = palette[labels].round().clip(0, 255).astype(np.uint8)
    return _u8(cv2.cvtColor(flat.reshape(rgb.shape), cv2.COLOR_LAB2RGB))


def _ink(grey: Image, width: float, sensitivity: float) -> Floats:
    """Dark line art (0 = paper, 1 = ink) from a smoothed grey image: the extended
    difference of Gaussians (XDoG, Winnemöller 2012) gives lines of a chosen width with
    soft, anti-aliased flanks, where Canny would give 1-px stairs that flicker when the
    camera resamples them."""
    import numpy as np

    luma = grey.astype(np.float32) * np.float32(1 / 255)
    sigma = max(0.6, width / 2)
    dog = _blur(luma, sigma) - _blur(luma, sigma * 1.6)
    # Negative DoG = darker than the surroundings, i.e. the dark side of an edge.
    ink: Floats = np.clip(-dog * sensitivity - 0.15, 0.0, 1.0)
    return ink


def _shading(height_map: Floats, light: tuple[float, float, float]) -> Floats:
    """Lambert shading of a height map (heights in pixels) lit from `light`, divided by
    what a flat surface gets: 1 on flats, brighter on slopes facing the light."""
    import cv2
    import numpy as np

    gx = cv2.Sobel(height_map, cv2.CV_32F, 1, 0, ksize=3) * np.float32(1 / 8)
    gy = cv2.Sobel(height_map, cv2.CV_32F, 0, 1, ksize=3) * np.float32(1 / 8)
    lx, ly, lz = (v / math.sqrt(sum(w * w for w in light)) for v in light)
    lambert = (lz - gx * lx - gy * ly) / np.sqrt(1 + gx * gx + gy * gy)
    shade: Floats = np.clip(lambert / np.float32(lz), 0.0, 1.6)
    return shade


def anime(rgb: Image, seed: int) -> Image:
    """Cel look: flat k-means colour areas over edge-preserving smoothing, clean dark
    line art, vivid colour."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    small = _work_copy(rgb)
    smooth = _u8(cv2.bilateralFilter(cv2.bilateralFilter(small, 9, 40, 7), 9, 30, 5))
    flat = _u8(cv2.medianBlur(_kmeans_palette(smooth, 14, seed), 5))  # drops speckle
    # Mostly flat cels, with a little of the smooth shading left so faces keep form.
    colour = _saturate(_floats(flat) * 0.8 + _floats(smooth) * 0.2, 1.45)
    base = _resize(_bytes(colour), width, height)
    grey = _u8(cv2.cvtColor(_resize(smooth, width, height), cv2.COLOR_RGB2GRAY))
    ink = _ink(grey, width=min(height, width) / 300, sensitivity=40.0)
    # Lines are the colour underneath at a tenth of its brightness; done by OpenCV on
    # the bytes, 6x faster than the same product in numpy floats.
    keep = cv2.cvtColor(1 - np.float32(0.9) * ink, cv2.COLOR_GRAY2RGB)
    return _u8(cv2.multiply(base, keep, dtype=cv2.CV_8U))


def animation_3d(rgb: Image, seed: int) -> Image:
    """Feature-animation render look: surfaces smoothed into soft gradients, rounded
    shading, a warm saturated palette, a key light and rim light, and bloom."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    short = min(height, width)
    small = _work_copy(rgb)
    soft = cv2.edgePreservingFilter(small, flags=cv2.RECURS_FILTER, sigma_s=40, sigma_r=0.35)
    soft = _u8(cv2.bilateralFilter(soft, 9, 25, 9))
    base = _floats(_resize(soft, width, height))
    luma = _luma(base)
    # A little of the original's fine detail (eyes, lettering), as a render keeps them.
    detail = _luma(_floats(rgb)) - luma
    base += (np.clip(detail, -0.15, 0.15) * 0.4)[:, :, None]
    # Rounded forms: brightness as height, shaded from the top left.
    relief = _blur(luma, short / 80) * np.float32(short / 12)
    base *= (0.6 + 0.4 * _shading(relief, (-0.5, -0.7, 0.9)))[:, :, None]
    # Warm grade: lift red, trim blue, then saturate.
    base = _saturate(base * np.array([1.07, 1.0, 0.88], np.float32), 1.35)
    xs, ys = _grid(height, width)
    nx, ny = (xs - width / 2) / (width / 2), (ys - height / 2) / (height / 2)
    # Key light from the top left falling off across the frame, and a gentle vignette.
    key = 1.0 + 0.10 * np.clip(-(nx + ny) / 2, -1, 1)
    vignette = 1.0 - 0.2 * np.clip(nx * nx + ny * ny - 0.35, 0, None)
    base *= (key * vignette)[:, :, None]
    # Rim light: a thin warm halo along the silhouettes of bright shapes.
    edges = np.abs(cv2.Laplacian(_blur(luma, short / 200), cv2.CV_32F))
    rim = _blur(np.clip(edges * 40, 0, 1) * np.clip(luma - 0.4, 0, 1), short / 300)
    base += (rim * 0.35)[:, :, None] * np.array([1.0, 0.85, 0.6], np.float32)
    # Bloom: the brightest parts bleed light (blurred at quarter size: it is all low
    # frequencies), composited with "screen" so nothing clips hard.
    bright = np.clip(base - 0.72, 0, None) * 2.5
    glow = _blur(_resize(bright, max(1, width // 4), max(1, height // 4)), short / 96)
    glow = np.clip(_resize(glow, width, height) * 0.6, 0, 1)
    del seed  # nothing random in this look
    return _bytes(1 - (1 - np.clip(base, 0, 1)) * (1 - glow))


def clay(rgb: Image, seed: int) -> Image:
    """Plasticine look: mean-shift blobs in a small matte palette, each puffed up into a
    rounded lump with grooves between, and faint fingerprint ridges on the surface."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    short = min(height, width)
    small = _work_copy(rgb, 480)
    shifted = _u8(cv2.pyrMeanShiftFiltering(small, sp=6, sr=22, maxLevel=2))
    blobs = _kmeans_palette(shifted, 14, seed)
    blobs = _u8(cv2.medianBlur(cv2.medianBlur(blobs, 9), 9))  # rounds the outlines
    # Each blob becomes a lump: height rises with the distance from its outline over a
    # bevel of `radius` px (a quarter circle), so the lighting rounds its edges and the
    # seams between lumps read as grooves.
    outline = cv2.Canny(blobs, 1, 1)
    distance = _f32(cv2.distanceTransform(255 - outline, cv2.DIST_L2, 3))
    radius = np.float32(max(3.0, min(small.shape[:2]) / 30))
    rise = np.minimum(distance, radius) / radius
    bump = np.sqrt(1 - (1 - rise) ** 2) * radius
    lumps = _shading(_blur(bump, 1.5), (-0.55, -0.75, 0.8))
    light = (0.68 + 0.3 * lumps) * (0.88 + 0.12 * rise)  # shading, then groove occlusion
    base = _floats(blobs)
    # Matte: lower contrast, and nothing near full white; plasticine is dyed, so the
    # colours get a little stronger rather than weaker.
    mean = base.reshape(-1, 3).mean(0)
    base = _saturate(mean + (base - mean) * 0.82, 1.15) * 0.9 + 0.05
    lit = _resize(_f32(base * light[:, :, None] * 1.12), width, height)
    # Fingerprints: ridges of ~short/110 px whose direction wanders with smooth noise,
    # only in a few patches, as if the clay had been pressed here and there.
    rng = np.random.default_rng(seed)
    xs, ys = _grid(height, width)
    period = max(6.0, short / 110)
    angle = _smooth_noise(height, width, 4, rng) * np.float32(math.pi)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) * np.float32(2 * math.pi / period)
    phase += _smooth_noise(height, width, 6, rng) * 6
    patches = np.clip(_smooth_noise(height, width, 5, rng) * 2 - 0.4, 0, 1)
    ridges = 1 + np.sin(phase) * patches * np.float32(0.05)
    return _bytes(lit * ridges[:, :, None])


def comic(rgb: Image, seed: int) -> Image:
    """Print comic look: flat colours posterised towards a CMY palette, halftone dots in
    the shadows, bold black ink outlines."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    short = min(height, width)
    small = _work_copy(rgb)
    smooth = _u8(cv2.bilateralFilter(cv2.bilateralFilter(small, 9, 50, 7), 9, 40, 5))
    # Posterise in HSV: hue to 12 steps of 30° (the printer's C, M, Y, R, G, B and the
    # steps between), saturation to 3 levels and value to 4, so every region becomes
    # one flat, strong ink colour of its own hue, and greys stay grey.
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV).astype(np.float32)
    hue = (np.round(hsv[:, :, 0] / 15) * 15) % 180
    saturation = np.clip(np.round(hsv[:, :, 1] / 255 * 2.6) / 2, 0, 1) * 255
    value = (np.round(np.clip(hsv[:, :, 2] / 255 * 1.15, 0, 1) * 3) / 3 * 0.82 + 0.18) * 255
    poster = np.stack([hue, saturation, value], 2).astype(np.uint8)
    flat = _u8(cv2.medianBlur(cv2.cvtColor(poster, cv2.COLOR_HSV2RGB), 5))
    paper = np.array([1.0, 0.97, 0.9], np.float32)
    base = _floats(_resize(flat, width, height)) * paper
    luma = _luma(_floats(_resize(smooth, width, height)))
    # Halftone: a 45° grid of dots whose area grows with how dark the shadow is. The
    # cell stays >= 6 px so zooming the still never turns the dots into moiré.
    cell = max(6.0, short / 90)
    xs, ys = _grid(height, width)
    u = (xs + ys) * np.float32(math.sqrt(0.5) / cell)
    v = (xs - ys) * np.float32(math.sqrt(0.5) / cell)
    distance = np.hypot(u - np.round(u), v - np.round(v)) * np.float32(cell)
    darkness = np.clip((0.55 - _blur(luma, cell / 2)) / 0.45, 0, 1)
    dots = np.clip(np.sqrt(darkness) * np.float32(cell * 0.62) - distance + 0.5, 0, 1)
    base *= (1 - 0.8 * dots)[:, :, None]
    grey = _u8(cv2.cvtColor(_resize(smooth, width, height), cv2.COLOR_RGB2GRAY))
    ink = np.clip(_ink(grey, width=short / 180, sensitivity=22.0) * 1.6, 0, 1)
    del seed  # the dot grid is fixed, like a printing screen
    return _bytes(base * (1 - ink[:, :, None]))


def cyberpunk(rgb: Image, seed: int) -> Image:
    """Neon night look: teal shadows and magenta highlights, hard contrast, glowing
    bright edges and a touch of lens chromatic aberration."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    short = min(height, width)
    lab = cv2.cvtColor(_floats(rgb), cv2.COLOR_RGB2LAB)
    lightness = lab[:, :, 0] * np.float32(1 / 100)
    # Contrast: an S-curve on lightness, with lifted blacks so the shadows can hold colour.
    curved = np.clip((lightness - 0.5) * 1.35 + 0.44, 0, 1)
    curved = curved * curved * (3 - 2 * curved)
    # Split toning in Lab: the image's own chroma, damped, plus a tint that slides from
    # teal (a < 0, b < 0) in the shadows to magenta-pink (a > 0, b < 0) in the lights.
    shadows, lights = (1 - curved) ** 1.5, curved**1.5
    lab[:, :, 0] = 8 + curved * 90
    lab[:, :, 1] = lab[:, :, 1] * 0.5 - 42 * shadows + 42 * lights
    lab[:, :, 2] = lab[:, :, 2] * 0.4 - 22 * shadows - 20 * lights
    base = _f32(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    # Neon: the outlines of bright things, in their own colour at full saturation, as a
    # thin bright tube and a wide glow ("screen" composited, so it only adds light).
    grey = cv2.cvtColor(_work_copy(rgb), cv2.COLOR_RGB2GRAY)
    canny = _f32(cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), 50, 120)) * np.float32(1 / 255)
    edges = _resize(_blur(canny, 0.8), width, height)
    bright = cv2.dilate(curved, np.ones((5, 5), np.uint8))
    tube = np.clip(edges * 2, 0, 1) * np.clip(bright * 2.5 - 1.2, 0, 1)
    hue = np.clip(_saturate(_blur(base, short / 100), 2.5) * 1.4 + 0.05, 0, 1)
    neon = tube[:, :, None] * hue
    glow = np.clip(_blur(neon, short / 500) * 0.7 + _blur(neon, short / 60) * 2.2, 0, 1)
    base = 1 - (1 - np.clip(base, 0, 1)) * (1 - glow)
    # Chromatic aberration: red scaled out from the centre and blue in, shifting the
    # frame edges by 1.5 px per 360 px of short side.
    k = max(1.0, short / 360) * 1.5 / (max(width, height) / 2)
    for channel, scale in ((0, 1 + k), (2, 1 - k)):
        matrix = np.array(
            [[scale, 0, (1 - scale) * (width - 1) / 2], [0, scale, (1 - scale) * (height - 1) / 2]]
        )
        base[:, :, channel] = cv2.warpAffine(
            np.ascontiguousarray(base[:, :, channel]), matrix, (width, height),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
    del seed  # nothing random in this look
    return _bytes(base)


_LOOKS = {
    "anime": anime,
    "3d_animation": animation_3d,
    "clay": clay,
    "comic": comic,
    "cyberpunk": cyberpunk,
}


def stylize(rgb: Image, style: str, seed: int = 0) -> Image:
    """`rgb` (HxWx3 uint8) in `style` (one of STYLES), same size; deterministic for a
    given image, style and seed (any int: API seeds may be negative or above 2**64)."""
    look = _LOOKS.get(style)
    if look is None:
        raise ValueError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    return look(rgb, seed % 2**64)
