"""The feathered lower-face mask and compositing: only pixels under the mask change, everything
outside it is the decoded source frame, byte for byte."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..landmarks import (CHIN, JAW_LOWER, LEFT_EYE_CORNERS, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, NOSE_TIP,
                         RIGHT_EYE_CORNERS)

LOWER_FACE: tuple[int, ...] = tuple(dict.fromkeys(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + JAW_LOWER + (CHIN, 58, 288)))
"""The landmarks whose hull is the part of the face that changes: lips, jaw line, chin (and 58,
288, the outline at the mouth corners)."""


def iod(points: np.ndarray) -> float:
    """Inter-ocular distance (eye-corner centres) of landmarks [478, >=2], px."""
    r = points[list(RIGHT_EYE_CORNERS), :2].mean(0)
    lft = points[list(LEFT_EYE_CORNERS), :2].mean(0)
    return float(np.linalg.norm(lft - r))


@dataclass(frozen=True)
class Mask:
    """alpha float32 [y1 - y0, x1 - x0] in 0..1 over ``box`` (x0, y0, x1, y1) of the frame; 0
    everywhere outside the box."""

    box: tuple[int, int, int, int]
    alpha: np.ndarray


GROW_BELOW = 0.03
"""How far (IOD) the mask reaches beyond the jaw line and chin: little, since beyond them lie the
neck, collar and background, which do not move with the head as the face does."""


def lower_face_mask(shapes: list[np.ndarray], size: tuple[int, int], unit: float, grow: float, feather: float) -> Mask:
    """The mask over the lower faces ``shapes`` (landmark arrays [478, >=2] px: the frame's own
    face first, then what is drawn over it, so both chins are covered): their hull, grown by
    ``grow`` towards the nose and by GROW_BELOW (at most ``grow``) at the jaw line and chin, and
    feathered over ``feather`` (all in units of ``unit`` px, the IOD). Alpha is exactly 0
    beyond the grown hull + feather / 2 and 1 inside it - feather / 2."""
    import cv2

    W, H = size
    pts = np.concatenate([s[list(LOWER_FACE), :2] for s in shapes]).astype(np.float64)
    hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    c = hull.mean(0)
    r = max(int(round(feather * unit / 4)), 1)  # two box filters of radius r: the edge spans +-2r
    d = hull - c
    n = np.linalg.norm(d, axis=1, keepdims=True)
    # Growth per hull point: full above the mouth (towards the nose), GROW_BELOW at the sides and
    # below, where the hull is the jaw line.
    own = shapes[0]
    ex = own[list(LEFT_EYE_CORNERS), :2].mean(0) - own[list(RIGHT_EYE_CORNERS), :2].mean(0)
    ex = ex / max(float(np.linalg.norm(ex)), 1e-6)
    down = np.array([-ex[1], ex[0]])
    if np.dot(down, own[CHIN, :2] - own[NOSE_TIP, :2]) < 0:
        down = -down
    mouth = own[[13, 14], :2].mean(0)
    up = np.clip(-((hull - mouth) @ down) / (0.25 * unit), 0.0, 1.0)[:, None]
    g = (min(GROW_BELOW, grow) + (grow - min(GROW_BELOW, grow)) * up) * unit
    grown = c + d * (1 + g / np.maximum(n, 1e-6))
    x0, y0 = np.floor(grown.min(0)).astype(int) - 2 * r - 1
    x1, y1 = np.ceil(grown.max(0)).astype(int) + 2 * r + 2
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return Mask((0, 0, 0, 0), np.zeros((0, 0), np.float32))
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [np.round((grown - [x0, y0]) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    k = 2 * r + 1
    # A box filter twice (a tent of radius 2 * (k // 2)): smooth, and exactly zero beyond it.
    alpha = cv2.blur(cv2.blur(m.astype(np.float32), (k, k), borderType=cv2.BORDER_CONSTANT), (k, k),
                     borderType=cv2.BORDER_CONSTANT) / 255.0
    alpha[alpha < 1e-3] = 0.0
    return Mask((x0, y0, x1, y1), alpha.astype(np.float32))


def composite(frame: np.ndarray, layer: np.ndarray, mask: Mask, out: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (uint8 [H, W, 3]) with ``layer`` (uint8 or float, the mask's box or the whole
    frame) blended in under the mask, into ``out`` (a copy of ``frame`` unless given: then it must
    hold ``frame``'s pixels already); outside the mask the result equals ``frame``."""
    if out is None:
        out = frame.copy()
    x0, y0, x1, y1 = mask.box
    if x1 <= x0 or y1 <= y0:
        return out
    if layer.shape[:2] == frame.shape[:2]:
        layer = layer[y0:y1, x0:x1]
    blend_into(out[y0:y1, x0:x1], frame[y0:y1, x0:x1], layer.astype(np.float32), mask.alpha)
    return out


def blend_into(region: np.ndarray, base: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> None:
    """region (uint8 [h, w, 3], written) = base (uint8, same box) + alpha * (layer - base), rounded
    and clipped to 0 ... 255; ``layer`` float32 [h, w, 3] is used as scratch (overwritten). Where
    alpha is 0 the result is ``base`` exactly (base + 0 + 0.5, truncated). Only the box is
    touched: a few passes over it, each one vectorised (no per-pixel Python)."""
    b = base.astype(np.float32)
    np.subtract(layer, b, out=layer)
    np.multiply(layer, alpha[..., None], out=layer)
    np.add(layer, b, out=layer)
    np.add(layer, 0.5, out=layer)
    np.clip(layer, 0.0, 255.0, out=layer)
    np.copyto(region, layer, casting="unsafe")  # truncation after + 0.5: rounding
