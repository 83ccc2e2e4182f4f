"""Is the mouth visible? A portrait whose mouth is covered (a box, a bar, a sticker of one flat
colour) still gets a face mesh: mediapipe puts the lips where they would be, and the animation
would draw a moving mouth over the cover. Such a cover is told by its flatness: the pixels
inside the lips' outline, and around it, are one colour.

Measured on the 7 test portraits, 72 frames of the 10 test videos and the astronaut (80
faces): at most 26 % of the lip area and 21 % of the ring around it lie within ``_FLAT_LEVELS``
of the lips' median colour (lips have shading, texture and a dark line between them), and none
is taken for covered. Boxes of one colour (black, white, grey, skin tone, red; PNG and JPEG at
quality 75) over the mouth of the 7 portraits: 208 of 210 boxes 1.15-2x the lips' size are
found (lips 78-100 % flat, ring 18-100 %), and 57 of 70 boxes cut to the lips' bounding box.
Lips painted one flat colour (a cartoon) are flat inside but differ from the skin around them
(ring <= 3 %): none of 14 is taken for covered.

Not detected: covers with texture or shading (a hand, a microphone, a mosaic), and a cover
cut to the lips' own outline.
"""

from __future__ import annotations

import math

import numpy as np

from facecast.errors import InputError
from facecast.landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
from facecast.types import FaceLandmarks

_OUTLINE = list(LIPS_OUTER_UPPER) + list(LIPS_OUTER_LOWER[-2:0:-1])  # closed, corners once
_FLAT_LEVELS = 6  # a pixel is "the same colour" within this many levels in every channel
_RING_SCALE = 1.5  # the ring: the lips' outline scaled by this about its centre, minus the lips
_COVERED_LIPS = 0.6  # flat fractions beyond which the mouth is covered: the lips ...
_COVERED_RING = 0.15  # ... and the ring (the cover reaches past the lips)
_MIN_PIXELS = 50  # fewer lip pixels than this say nothing


def mouth_flatness(image: np.ndarray, face: FaceLandmarks) -> tuple[float, float]:
    """(lips, ring): the fractions of the pixels inside the lips' outer outline, and in a ring
    around it, within _FLAT_LEVELS of the lips' median colour. ``image`` is uint8 [H, W, 3]
    RGB, the one ``face`` was found in. (0, 0) when the lips cover too few pixels to tell."""
    import cv2  # installed with mediapipe

    h, w = image.shape[:2]
    lips = face.points[_OUTLINE, :2].astype(np.float64)
    mid = lips.mean(axis=0)
    ring = mid + (lips - mid) * _RING_SCALE
    x0, y0 = (max(0, math.floor(v)) for v in ring.min(axis=0))
    x1, y1 = min(w, math.ceil(ring[:, 0].max()) + 1), min(h, math.ceil(ring[:, 1].max()) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0, 0.0
    sub = image[y0:y1, x0:x1]

    def mask(poly: np.ndarray) -> np.ndarray:
        m = np.zeros(sub.shape[:2], np.uint8)
        # 2 bits of sub-pixel precision; pixel centres at +0.5 (pixel-edge coordinates).
        pts = np.round((poly - (x0 + 0.5, y0 + 0.5)) * 4).astype(np.int32)
        cv2.fillPoly(m, [pts], 1, shift=2)
        return m.astype(bool)

    inner, outer = mask(lips), mask(ring)
    lip_px = sub[inner].astype(np.int16)
    if len(lip_px) < _MIN_PIXELS:
        return 0.0, 0.0
    median = np.median(lip_px, axis=0)
    ring_px = sub[outer & ~inner].astype(np.int16)

    def flat(px: np.ndarray) -> float:
        return float((np.abs(px - median).max(axis=1) <= _FLAT_LEVELS).mean()) if len(px) else 0.0

    return flat(lip_px), flat(ring_px)


def check_mouth_visible(image: np.ndarray, face: FaceLandmarks, *, source: str) -> None:
    """Raise InputError when the mouth of ``face`` looks covered (see the module's notes)."""
    lips, ring = mouth_flatness(image, face)
    if lips >= _COVERED_LIPS and ring >= _COVERED_RING:
        raise InputError(
            f"{source}: the mouth is covered or not visible: the lips and the skin around them are "
            f"one flat colour ({lips:.0%} of the lip area). facecast animates the mouth and has to "
            "see it. Use a photo where the mouth is visible"
        )
