"""Find faces and their 468-point meshes with the MediaPipe models, run by OpenCV.

Kinema never imports mediapipe (its numpy<2 pin would clash with ours); `make install`
puts the wheel in without its dependencies and `kinema.media.face_models` only reads two
of its .tflite files: BlazeFace short-range (boxes, 128x128 input) and the face mesh (468
landmarks, 192x192 input). Both are tiny, so they run on CPU in a few milliseconds.

BlazeFace sees faces that fill roughly 15-80 % of its input, so it runs over a small
pyramid of square windows (the whole image letterboxed, then halves, then quarters) and
the detections are merged by weighted non-maximum suppression, as MediaPipe does. Every
candidate is then confirmed by the mesh model's own face-presence score on a rotated,
square crop with a 25 % margin (the crop the mesh was trained on; tighter or looser crops
make the points drift), refined once from the first mesh. Gradients, noise and
face-like textures that fool the detector do not pass the mesh model's check. The image
is searched again inside a grey margin for faces cut by its edge (their landmarks may
then lie outside the image; the box is clipped to it).

A detector run is ~1.5 ms and a mesh ~2 ms on one core: `find_faces` over the whole
pyramid is ~60 runs on a square image, `largest_face` stops at the first level that
shows a face (typically one or ten runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinema.media.face_models import model

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DETECT_SIZE = 128  # BlazeFace short-range input
MESH_SIZE = 192  # face mesh input
DETECT_THRESHOLD = 0.5
NMS_IOU = 0.3
MESH_THRESHOLD = 0.5  # the mesh model's face-presence probability
CROP_SCALE = 1.5  # the crop is the face box plus 25 % on every side
PYRAMID_LEVELS = 3  # window sides: long side, then /2, then /4
MIN_WINDOW = 96  # below this a window holds no face the mesh can resolve
EYE_RIGHT, EYE_LEFT = 33, 263  # outer eye corners (subject's right, left)
EDGE_PAD, EDGE_PAD_MIN = 0.1, 16  # margin added before detection: share of the long side
EDGE_GREY = (128, 128, 128)  # its colour: mid grey finds more cut faces than black


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in image pixels (the mesh's extent)
    landmarks: NDArray[np.float32]  # (468, 2) x, y in image pixels
    score: float  # the mesh model's face-presence probability


def _anchors() -> NDArray[np.float32]:
    """BlazeFace short-range's 896 anchor centres (x, y in [0, 1]): 2 per cell of the
    16x16 stride-8 map, then 6 per cell of the 8x8 stride-16 map (three layers merged)."""
    import numpy as np

    centres = []
    for cells, per_cell in ((16, 2), (8, 6)):
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(xy, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS: Any = None


def _windows(width: int, height: int) -> list[list[tuple[int, int, int]]]:
    """Per pyramid level, (x, y, side) squares covering the image, overlapping by half so
    a face cut by one window is whole in the next."""
    long_side = max(width, height)
    out: list[list[tuple[int, int, int]]] = []
    for level in range(PYRAMID_LEVELS):
        side = long_side // (2**level)
        if side < MIN_WINDOW and level:
            break

        def starts(length: int, side: int = side) -> list[int]:
            if length <= side:
                return [(length - side) // 2]  # centred, padded (letterboxed)
            count = math.ceil((length - side) / (side / 2)) + 1
            return [round(i * (length - side) / (count - 1)) for i in range(count)]

        out.append([(x, y, side) for y in starts(height) for x in starts(width)])
    return out


def _square(rgb: NDArray[np.uint8], x: int, y: int, side: int, size: int) -> NDArray[np.uint8]:
    """The `side`-pixel square at (x, y), black outside the image, resized to `size`
    (area averaging when shrinking, so small windows do not alias)."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    crop: Any = rgb[max(0, y) : max(0, y + side), max(0, x) : max(0, x + side)]
    pads = (max(0, -y), max(0, y + side - height), max(0, -x), max(0, x + side - width))
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(crop, (size, size), interpolation=interpolation), np.uint8)


def _detect(
    rgb: NDArray[np.uint8], windows: list[tuple[int, int, int]]
) -> list[tuple[NDArray[np.float32], float]]:
    """Candidate faces as ([x0, y0, x1, y1, eye_rx, eye_ry, eye_lx, eye_ly], score) in
    image pixels, after weighted NMS across `windows`."""
    import numpy as np

    global _ANCHORS
    if _ANCHORS is None:
        _ANCHORS = _anchors()
    detector = model("detector")
    found: list[NDArray[np.float32]] = []
    scores: list[NDArray[np.float32]] = []
    for x, y, side in windows:
        crop = _square(rgb, x, y, side, DETECT_SIZE).astype(np.float32) / 127.5 - 1.0
        outputs = detector(crop)
        regress = next(o for o in outputs if o.shape[-1] == 16)[0]
        logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
        keep = logits > math.log(DETECT_THRESHOLD / (1 - DETECT_THRESHOLD))
        if not keep.any():
            continue
        raw, anchors = regress[keep] / DETECT_SIZE, _ANCHORS[keep]
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        eyes = raw[:, 4:8] + np.tile(anchors, 2)  # right eye x, y, left eye x, y
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        rows = np.concatenate([boxes, eyes], axis=1) * side + [x, y] * 4
        found.append(rows.astype(np.float32))
        scores.append((1 / (1 + np.exp(-np.clip(logits[keep], -100, 100)))).astype(np.float32))
    if not found:
        return []
    return _weighted_nms(np.concatenate(found), np.concatenate(scores))


def _iou(box: NDArray[Any], boxes: NDArray[Any]) -> NDArray[np.float64]:
    import numpy as np

    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out: NDArray[np.float64] = inter / np.maximum(area + areas - inter, 1e-9)
    return out


def _weighted_nms(
    rows: NDArray[np.float32], scores: NDArray[np.float32]
) -> list[tuple[NDArray[np.float32], float]]:
    """MediaPipe's blending NMS: each cluster of overlapping detections becomes their
    score-weighted mean, which is steadier than keeping only the best one."""
    import numpy as np

    order = np.argsort(-scores)
    rows, scores = rows[order], scores[order]
    alive = np.ones(len(rows), dtype=bool)
    out = []
    for i in range(len(rows)):
        if not alive[i]:
            continue
        cluster = alive & (_iou(rows[i], rows) > NMS_IOU)
        cluster[i] = True
        alive &= ~cluster
        weights = scores[cluster][:, None]
        out.append(((rows[cluster] * weights).sum(0) / weights.sum(), float(scores[i])))
    return out


def _mesh(
    rgb: NDArray[np.uint8], centre: tuple[float, float], side: float, angle: float
) -> tuple[NDArray[np.float32], float]:
    """468 landmarks (image pixels) and the face-presence probability for the square
    crop of `side` pixels centred at `centre`, rotated by `angle` (radians, image axes)
    so that the eyes lie level in the crop."""
    import cv2
    import numpy as np

    cos, sin = math.cos(angle), math.sin(angle)
    scale = side / MESH_SIZE
    half = MESH_SIZE / 2
    # crop -> image: p = centre + R(angle) (q - half) * scale
    forward = np.array(
        [
            [cos * scale, -sin * scale, centre[0] - (cos * half - sin * half) * scale],
            [sin * scale, cos * scale, centre[1] - (sin * half + cos * half) * scale],
        ]
    )
    crop = cv2.warpAffine(
        rgb, forward, (MESH_SIZE, MESH_SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
    )  # fmt: skip
    outputs = model("mesh")(crop.astype(np.float32) / 255.0)
    points = next(o for o in outputs if o.size == 468 * 3).reshape(468, 3)[:, :2]
    logit = float(next(o for o in outputs if o.size == 1).ravel()[0])
    image_points = points @ forward[:, :2].T + forward[:, 2]
    return image_points.astype(np.float32), 1 / (1 + math.exp(-min(max(logit, -100), 100)))


def _roi_from_points(points: NDArray[np.float32]) -> tuple[tuple[float, float], float, float]:
    """MediaPipe's landmarks -> crop rule: rotation from the outer eye corners, the
    points' extent in that rotated frame, enlarged by CROP_SCALE and made square."""
    import numpy as np

    dx, dy = points[EYE_LEFT] - points[EYE_RIGHT]
    angle = math.atan2(float(dy), float(dx))
    cos, sin = math.cos(angle), math.sin(angle)
    local = points @ np.array([[cos, -sin], [sin, cos]], dtype=np.float32)
    low, high = local.min(0), local.max(0)
    mid = (low + high) / 2
    centre = np.array([[cos, -sin], [sin, cos]]) @ mid
    side = float(max(high - low)) * CROP_SCALE
    return (float(centre[0]), float(centre[1])), side, angle


def _confirm(rgb: NDArray[np.uint8], row: NDArray[np.float32]) -> Face | None:
    """The mesh for one detection, or None when the mesh model sees no face there."""
    import numpy as np

    height, width = rgb.shape[:2]
    x0, y0, x1, y1, rx, ry, lx, ly = (float(v) for v in row)
    side = max(x1 - x0, y1 - y0) * CROP_SCALE
    angle = math.atan2(ly - ry, lx - rx)
    points, score = _mesh(rgb, ((x0 + x1) / 2, (y0 + y1) / 2), side, angle)
    if score < MESH_THRESHOLD:
        return None
    # The mesh is more precise than the detector's box: re-crop around it once.
    points, score = _mesh(rgb, *_roi_from_points(points))
    if score < MESH_THRESHOLD:
        return None
    low = np.clip(np.floor(points.min(0)), 0, [width - 1, height - 1]).astype(int)
    high = np.clip(np.ceil(points.max(0)), 0, [width - 1, height - 1]).astype(int)
    box = (int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)
    return Face(box=box, landmarks=points, score=score)


def _unpadded(face: Face, pad: int, width: int, height: int) -> Face:
    """`face` found in the padded image, in the original image's pixels: the landmarks
    shifted (those of a face cut by the edge lie outside it), the box clipped to it."""
    import numpy as np

    points = (face.landmarks - np.float32(pad)).astype(np.float32)
    low = np.clip(np.floor(points.min(0)), 0, [width - 1, height - 1]).astype(int)
    high = np.clip(np.ceil(points.max(0)), 0, [width - 1, height - 1]).astype(int)
    box = (int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)
    return Face(box=box, landmarks=points, score=face.score)


def _scan(rgb: NDArray[np.uint8], largest_only: bool) -> list[Face]:
    import numpy as np

    levels = _windows(rgb.shape[1], rgb.shape[0])
    if not largest_only:  # one NMS over every window, so each face is meshed once
        levels = [[window for level in levels for window in level]]
    faces: list[Face] = []
    corners: list[list[int]] = []
    for windows in levels:
        for row, _ in _detect(rgb, windows):
            if corners and (_iou(row[:4], np.array(corners)) > NMS_IOU).any():
                continue  # a face a larger window already found
            face = _confirm(rgb, row)
            if face is None:
                continue
            x, y, w, h = face.box
            # Two detections of one face (windows at different scales) can survive NMS
            # with different boxes; their meshes coincide, so keep the first.
            if corners and (_iou(np.array([x, y, x + w, y + h]), np.array(corners)) > 0.5).any():
                continue
            faces.append(face)
            corners.append([x, y, x + w, y + h])
        if largest_only and faces:
            break
    return faces


def _at_edge(face: Face, width: int, height: int) -> bool:
    x, y, w, h = face.box
    return x <= 1 or y <= 1 or x + w >= width - 1 or y + h >= height - 1


def _search(rgb: NDArray[np.uint8], largest_only: bool) -> list[Face]:
    import cv2
    import numpy as np

    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    faces = _scan(rgb, largest_only)
    if not (largest_only and faces):
        # A face cut by the image's edge sits at the edge of every window, where
        # BlazeFace misses it: a grey margin puts it inside some windows (and gives the
        # mesh crop a neutral background rather than black). The margin changes the
        # windows everywhere, so only faces it finds at the edge are added: elsewhere
        # the first search has already looked, and a second could only add false ones.
        pad = max(EDGE_PAD_MIN, round(EDGE_PAD * max(width, height)))
        padded: NDArray[np.uint8] = np.asarray(
            cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=EDGE_GREY),
            np.uint8,
        )
        corners = np.array([[x, y, x + w, y + h] for x, y, w, h in (f.box for f in faces)])
        for found in _scan(padded, largest_only):
            face = _unpadded(found, pad, width, height)
            x, y, w, h = face.box
            if not _at_edge(face, width, height):
                continue
            if len(corners) and (_iou(np.array([x, y, x + w, y + h]), corners) > NMS_IOU).any():
                continue  # found by the first search already
            faces.append(face)
    return sorted(faces, key=lambda face: face.box[2] * face.box[3], reverse=True)


def find_faces(rgb: NDArray[np.uint8]) -> list[Face]:
    """Every face in an HxWx3 RGB image, largest first; [] when there is none."""
    return _search(rgb, largest_only=False)


def largest_face(rgb: NDArray[np.uint8]) -> Face | None:
    """The largest face, or None. Stops at the first pyramid level (largest windows
    first) that shows a face: smaller windows only add faces smaller than those."""
    faces = _search(rgb, largest_only=True)
    return faces[0] if faces else None


def track_face(rgb: NDArray[np.uint8], previous: Face) -> Face | None:
    """The face of `previous` in the next video frame `rgb`: one mesh run (~3 ms) on the
    crop its landmarks give, as MediaPipe tracks faces in video; None once the mesh no
    longer sees a face there (search again with `largest_face`)."""
    import numpy as np

    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    points, score = _mesh(rgb, *_roi_from_points(previous.landmarks))
    if score < MESH_THRESHOLD:
        return None
    low = np.clip(np.floor(points.min(0)), 0, [width - 1, height - 1]).astype(int)
    high = np.clip(np.ceil(points.max(0)), 0, [width - 1, height - 1]).astype(int)
    box = (int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)
    return Face(box=box, landmarks=points, score=score)
