"""A box of a yuv420p picture as RGB and back, for drawing into decoded frames without
converting the whole frame (dub's span workers: a 1080p frame's mouth box is ~2 % of it).

Public API
----------
- ``Planes``: a yuv420p picture's three planes (uint8 arrays; Y [H, W], U and V [H/2, W/2]).
- ``even_box(box, size) -> box``: a box widened to even corners (4:2:0 chroma covers 2x2 pixels).
- ``roi_to_rgb(planes, box, matrix) -> uint8 [h, w, 3]``: the box as RGB.
- ``rgb_into_roi(rgb, planes, box, matrix, where)``: RGB written back into the box, only where
  ``where`` (bool [h, w]) is set: every other pixel keeps its decoded value exactly.

``matrix``: "bt709" or "bt601", limited range (16-235 / 16-240), as FFmpeg's swscale converts
(BT.709 for frames tagged so, BT.601 otherwise). Chroma is upsampled bilinearly and averaged
back over 2x2 blocks; a block is rewritten when any of its pixels is in ``where``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["MATRICES", "Planes", "even_box", "matrix_of", "rgb_into_roi", "roi_to_rgb"]

MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
"""(Kr, Kb) of each matrix."""


@dataclass
class Planes:
    """A yuv420p picture: y uint8 [H, W], u and v uint8 [H/2, W/2] (writable views of a decoded
    frame's planes, or arrays)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def matrix_of(colorspace: int | None) -> str:
    """The matrix swscale uses for a frame of FFmpeg colour space ``colorspace`` (AVCOL_SPC_*):
    BT.709 (1) as tagged, BT.601 for everything else (untagged included)."""
    return "bt709" if colorspace == 1 else "bt601"


@functools.lru_cache(maxsize=4)
def _forward(matrix: str) -> tuple[np.ndarray, np.ndarray]:
    """(M [3, 3], offset [3]): yuv = M @ rgb + offset, rgb in 0..255."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    luma = np.array([kr, kg, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - kr))
    M = np.stack([luma * 219 / 255, cb * 224 / 255, cr * 224 / 255]).astype(np.float32)
    return M, np.array([16.0, 128.0, 128.0], np.float32)


def even_box(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) widened to even coordinates, within ``size`` (W, H; both even)."""
    x0, y0, x1, y1 = box
    W, H = size
    return max(x0 - x0 % 2, 0), max(y0 - y0 % 2, 0), min(x1 + x1 % 2, W), min(y1 + y1 % 2, H)


def roi_to_rgb(planes: Planes, box: tuple[int, int, int, int], matrix: str) -> np.ndarray:
    """uint8 [h, w, 3] RGB of the (even) ``box`` of ``planes``."""
    import cv2

    x0, y0, x1, y1 = box
    y = planes.y[y0:y1, x0:x1]
    h, w = y.shape
    uv = cv2.merge([planes.u[y0 // 2:y1 // 2, x0 // 2:x1 // 2], planes.v[y0 // 2:y1 // 2, x0 // 2:x1 // 2]])
    uv = cv2.resize(uv, (w, h), interpolation=cv2.INTER_LINEAR)
    yuv = cv2.merge([y, uv[..., 0], uv[..., 1]]).astype(np.float32)
    return cv2.transform(yuv, _to_rgb(matrix)).round().clip(0, 255).astype(np.uint8)


def rgb_into_roi(rgb: np.ndarray, planes: Planes, box: tuple[int, int, int, int], matrix: str,
                 where: np.ndarray) -> None:
    """Write ``rgb`` (uint8 [h, w, 3], the even ``box``) into ``planes`` where ``where`` (bool
    [h, w]) holds; chroma per 2x2 block, where any of its pixels does."""
    import cv2

    if not where.any():
        return
    x0, y0, x1, y1 = box
    h, w = where.shape
    yuv = cv2.transform(rgb.astype(np.float32), _to_yuv(matrix))
    np.copyto(planes.y[y0:y1, x0:x1], yuv[..., 0].round().clip(0, 255).astype(np.uint8), where=where)
    block = where[0::2, 0::2] | where[1::2, 0::2] | where[0::2, 1::2] | where[1::2, 1::2]
    c = cv2.resize(yuv[..., 1:], (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # 2x2 means (exact halving)
    c = c.round().clip(0, 255).astype(np.uint8)
    np.copyto(planes.u[y0 // 2:y1 // 2, x0 // 2:x1 // 2], c[..., 0], where=block)
    np.copyto(planes.v[y0 // 2:y1 // 2, x0 // 2:x1 // 2], c[..., 1], where=block)


@functools.lru_cache(maxsize=4)
def _to_yuv(matrix: str) -> np.ndarray:
    """[3, 4] for cv2.transform: yuv = M @ rgb + offset."""
    M, off = _forward(matrix)
    return np.concatenate([M, off[:, None]], 1).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _to_rgb(matrix: str) -> np.ndarray:
    """[3, 4] for cv2.transform: rgb = M^-1 @ (yuv - offset)."""
    M, off = _forward(matrix)
    inv = np.linalg.inv(M.astype(np.float64))
    return np.concatenate([inv, -(inv @ off.astype(np.float64))[:, None]], 1).astype(np.float32)
