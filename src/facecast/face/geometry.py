"""Geometry shared by finding and framing faces: downscaled copies, tiles, boxes, and quarter
turns of images and landmarks (a portrait on its side or upside down is turned upright).

Quarter turns count like ``np.rot90``'s ``k``: counter-clockwise as the picture is seen, so
``turn_image(rgb, 1)`` turns a face lying with its top to the right upright.
"""

from __future__ import annotations

import math

import numpy as np

from facecast.landmarks import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS
from facecast.types import FaceLandmarks

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in pixels."""

_TILE_MIN_SIDE = 512


def downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Area-averaged copy with the longer side <= max_side (the input itself when small)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    import cv2  # installed with mediapipe

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering a w x h image, a third of its shorter
    side (at least 512 px) each: a 64 px face becomes >= 10 % of a tile, which the full-range
    detector finds reliably, while it misses faces under ~4 % of its input."""
    side = min(max(_TILE_MIN_SIDE, min(w, h) // 3), w, h)
    stride = side * 3 // 4  # 25 % overlap, so that a face cut by one tile is whole in the next
    return [(x, y, x + side, y + side) for y in _starts(h, side, stride) for x in _starts(w, side, stride)]


def panels(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Squares of the image's shorter side along its longer one, overlapping by half (none for
    an image close to square): every face up to half the shorter side is whole in one of them.
    A detector letterboxes a wide picture into its square input, where the faces of a row of
    portraits shrink to a few pixels; in a panel they keep their size."""
    side = min(w, h)
    if max(w, h) < 1.5 * side:
        return []
    return [(x, y, x + side, y + side) for y in _starts(h, side, side // 2) for x in _starts(w, side, side // 2)]


def _starts(extent: int, side: int, stride: int) -> list[int]:
    n = max(1, math.ceil((extent - side) / max(1, stride)) + 1)
    return sorted({round(i * (extent - side) / max(1, n - 1)) for i in range(n)})


def square_around(box: Box, side: float, w: int, h: int) -> tuple[int, int, int, int]:
    """The side x side square centred on ``box``, clipped to a w x h image: (x0, y0, x1, y1)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    return x0, y0, x1, y1


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def contains(box: Box, x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def bbox_area(face: FaceLandmarks) -> float:
    x0, y0, x1, y1 = face.bbox
    return (x1 - x0) * (y1 - y0)


# ---------------------------------------------------------------------------------------------
# Roll and quarter turns


def face_roll(face: FaceLandmarks) -> float:
    """The face's roll in degrees, (-180, 180]: the angle of its eye line (subject's right eye
    to left eye) in the picture, y down; 0 = upright, -90 = lying with its top to the left
    (the picture turned counter-clockwise), +-180 = upside down."""
    right = face.points[list(RIGHT_EYE_CORNERS), :2].astype(np.float64).mean(axis=0)
    left = face.points[list(LEFT_EYE_CORNERS), :2].astype(np.float64).mean(axis=0)
    return math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))


def upright_turns(face: FaceLandmarks) -> int:
    """Quarter turns (``np.rot90``'s k, 0-3) that put the face nearest to upright: 0 for any
    roll within +-45 degrees (a tilted head is left as it is)."""
    return round(face_roll(face) / 90.0) % 4


def turn_image(rgb: np.ndarray, k: int) -> np.ndarray:
    """``rgb`` turned by k quarter turns counter-clockwise (a new, C-contiguous array; the
    input itself when k is a multiple of 4)."""
    k %= 4
    return rgb if k == 0 else np.ascontiguousarray(np.rot90(rgb, k))


def turn_points(points: np.ndarray, k: int, size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates [..., 2+] of an image of ``size`` = (w, h) in that image turned by
    k quarter turns (pixel-edge convention: exact, no half-pixel shifts); z is unchanged."""
    k %= 4
    w, h = size
    out = np.array(points, dtype=np.float64, copy=True)
    x, y = points[..., 0].astype(np.float64), points[..., 1].astype(np.float64)
    if k == 1:  # counter-clockwise: the right edge becomes the top
        out[..., 0], out[..., 1] = y, w - x
    elif k == 2:
        out[..., 0], out[..., 1] = w - x, h - y
    elif k == 3:
        out[..., 0], out[..., 1] = h - y, x
    return out


def turned_size(size: tuple[int, int], k: int) -> tuple[int, int]:
    w, h = size
    return (h, w) if k % 2 else (w, h)


def turn_face(face: FaceLandmarks, k: int) -> FaceLandmarks:
    """``face`` in its image turned by k quarter turns (see ``turn_image``)."""
    if k % 4 == 0:
        return face
    pts = turn_points(face.points, k, face.image_size).astype(np.float32)
    return FaceLandmarks(points=pts, image_size=turned_size(face.image_size, k))
