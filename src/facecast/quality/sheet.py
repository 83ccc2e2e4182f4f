"""`facecast sheet`: a portrait's mouth and eyes up close in the states where a renderer shows
its seams (issue #17): rest, a closed mouth (an m after a vowel), a near-closed one, half-open,
wide open, rounded, a blink and a smile, each zoomed in on the mouth (and the eyes for the blink).

    STATES                       the states, as motion parameters
    state_params() -> [S, P]     their parameter rows (columns = types.MOTION_PARAMS)
    render_states(portrait)      frames of them with the current renderer
    sheet_image(portrait, rows)  rows of frames (e.g. "before" / "after") -> one RGB picture
    write_sheet(path, ...)       PNG

Sheets of third-party portraits are for looking at, not for the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import landmarks as lm
from ..types import MOTION_INDEX, MOTION_PARAMS, Portrait

__all__ = ["STATES", "state_params", "render_states", "sheet_image", "write_sheet"]

STATES: tuple[tuple[str, dict[str, float]], ...] = (
    ("rest", {}),
    ("closed (m)", {"jaw_open": 0.3, "lip_close": 1.0, "lip_spread": 0.1, "upper_lip": 0.05}),
    ("near-closed", {"jaw_open": 0.06, "lip_spread": 0.15}),
    ("half-open", {"jaw_open": 0.35, "lip_spread": 0.1}),
    ("open", {"jaw_open": 0.8, "upper_lip": 0.2}),
    ("rounded (oo)", {"jaw_open": 0.3, "lip_round": 0.8}),
    ("blink", {"blink": 1.0}),
    ("smile", {"smile": 0.7, "brow_raise": 0.1}),
)
"""(label, motion parameters) of each column of a sheet; parameters not named are 0."""


def state_params(columns: int = len(MOTION_PARAMS)) -> np.ndarray:
    """float32 [len(STATES), columns]: the states' parameter rows. ``columns`` < len(MOTION_PARAMS)
    drops the later parameters (for renderers made before them, e.g. a "before" run)."""
    p = np.zeros((len(STATES), len(MOTION_PARAMS)), np.float32)
    for i, (_, cols) in enumerate(STATES):
        for k, v in cols.items():
            p[i, MOTION_INDEX[k]] = v
    return p[:, :columns]


def render_states(portrait: Portrait, options=None) -> np.ndarray:
    """uint8 [len(STATES), H, W, 3]: the portrait in each state, drawn by `render.MeshRenderer`."""
    from ..options import RenderOptions
    from ..render import MeshRenderer
    from ..types import MotionFrames

    r = MeshRenderer(portrait, options or RenderOptions())
    return r.render(MotionFrames(state_params(), 25.0, 0)).frames.cpu().numpy()


def _box(points: np.ndarray, idx, side: float, top: float, bottom: float, iod: float,
         shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the landmarks ``idx`` with margins in IOD units, inside ``shape``."""
    H, W = shape
    xy = points[list(idx), :2]
    x0, y0 = xy.min(0) - [side * iod, top * iod]
    x1, y1 = xy.max(0) + [side * iod, bottom * iod]
    return max(int(x0), 0), max(int(y0), 0), min(int(np.ceil(x1)), W), min(int(np.ceil(y1)), H)


def sheet_image(portrait: Portrait, rows: dict[str, np.ndarray], zoom: int = 3) -> np.ndarray:
    """One RGB picture: for each row (label -> frames [len(STATES), H, W, 3]) the mouth of every
    state zoomed ``zoom`` times (nearest neighbour: pixels stay pixels), and the eyes in the
    blink column; labels above the columns and at the left of the rows."""
    import cv2

    pts, iod = portrait.face.points, portrait.face.interocular
    shape = portrait.image.shape[:2]
    mx0, my0, mx1, my1 = _box(pts, lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER, 0.12, 0.1, 0.35, iod, shape)
    eyes = lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
    ex0, ey0, ex1, ey1 = _box(pts, eyes, 0.08, 0.12, 0.1, iod, shape)
    blink = [label for label, _ in STATES].index("blink")
    cw = (mx1 - mx0) * zoom
    ch = (my1 - my0) * zoom
    eh = int(round((ey1 - ey0) * cw / max(ex1 - ex0, 1)))
    head, side = 28, 90
    tiles = []
    for label, frames in rows.items():
        cells = []
        for s, f in enumerate(frames):
            if s == blink:
                cell = cv2.resize(f[ey0:ey1, ex0:ex1], (cw, eh), interpolation=cv2.INTER_NEAREST)
                cell = np.pad(cell, ((0, max(ch - eh, 0)), (0, 0), (0, 0)), constant_values=255)[:ch]
            else:
                cell = cv2.resize(f[my0:my1, mx0:mx1], (cw, ch), interpolation=cv2.INTER_NEAREST)
            cells.append(np.pad(cell, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        row = np.concatenate(cells, 1)
        lab = np.full((row.shape[0], side, 3), 255, np.uint8)
        cv2.putText(lab, label, (4, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([lab, row], 1))
    body = np.concatenate(tiles, 0)
    top = np.full((head, body.shape[1], 3), 255, np.uint8)
    for s, (label, _) in enumerate(STATES):
        cv2.putText(top, label, (side + s * (cw + 4) + 4, head - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([top, body], 0)


def write_sheet(path: str | Path, portrait: Portrait, rows: dict[str, np.ndarray], zoom: int = 3) -> Path:
    """Write `sheet_image` as a PNG; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet_image(portrait, rows, zoom)).save(path)
    return path
