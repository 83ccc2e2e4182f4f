"""compose: where each face sits in the picture, and the picture made of them.

    split  the speakers side by side, one column each, in the front matter's order
    grid   rows and columns (as square as the picture allows: 4 speakers at 16:9 -> 2 x 2)
    solo   one face fills the picture: the ``Director`` cuts to whoever speaks, on line
           boundaries, once the current shot has lasted ``min_shot_s``

Every face is rendered square at ``face_side`` pixels (the largest even side that fits its
cell) and centred in its cell over the background (a colour or an image, scaled to cover the
picture and centre-cropped). Name captions sit at the bottom of each face (at the top when
subtitles are burnt in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .subtitles import TextOverlay

__all__ = ["Cell", "Layout", "Director", "grid_shape"]


@dataclass(frozen=True)
class Cell:
    """A face's place: its cell (x, y, w, h) and the square face inside it (fx, fy, side)."""

    x: int
    y: int
    w: int
    h: int
    fx: int
    fy: int
    side: int


def grid_shape(n: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) for ``n`` faces: the arrangement whose faces come out largest."""
    best = (n, 1)
    best_side = -1
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        side = min(width // cols, height // rows)
        if side > best_side:
            best, best_side = (cols, rows), side
    return best


def _even(x: float) -> int:
    return max(int(x) // 2 * 2, 2)


class Layout:
    """Geometry and composition for ``kind`` ("split", "grid", "solo") at ``size`` (w, h) for the
    speakers ``names`` (in seat order)."""

    def __init__(self, kind: str, size: tuple[int, int], names: list[str], *, background, captions: bool,
                 captions_top: bool = False, device: torch.device | str = "cpu") -> None:
        self.kind, self.size, self.names = kind, size, list(names)
        self.captions_top = captions_top  # (burnt-in subtitles take the bottom)
        self.device = torch.device(device)
        W, H = size
        n = len(names)
        if kind == "solo":
            cols, rows = 1, 1
        elif kind == "split":
            cols, rows = n, 1
        else:
            cols, rows = grid_shape(n, W, H)
        cw, ch = W // cols, H // rows
        self.face_side = _even(min(cw, ch))
        self.cells: dict[str, Cell] = {}
        for i, name in enumerate(names):
            c, r = (0, 0) if kind == "solo" else (i % cols, i // cols)
            # A last grid row that is not full is centred.
            in_row = min(cols, n - r * cols) if kind == "grid" else cols
            x0 = (W - in_row * cw) // 2 + c * cw if kind == "grid" else c * cw
            y0 = (H - rows * ch) // 2 + r * ch
            fx, fy = x0 + (cw - self.face_side) // 2, y0 + (ch - self.face_side) // 2
            self.cells[name] = Cell(x0, y0, cw, ch, fx, fy, self.face_side)
        self.background = self._background(background)
        self.captions = {name: TextOverlay(name, self.face_side, self.face_side, scale=0.06, device=self.device)
                         for name in names} if captions else {}

    def _background(self, background) -> torch.Tensor:
        W, H = self.size
        if isinstance(background, (str, Path)):
            from PIL import Image

            from ..face import load_image

            img = load_image(background)
            h, w = img.shape[:2]
            s = max(W / w, H / h)
            nw, nh = max(W, round(w * s)), max(H, round(h * s))
            img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.LANCZOS))
            x, y = (nw - W) // 2, (nh - H) // 2
            return torch.from_numpy(np.array(img[y:y + H, x:x + W])).to(self.device)
        return torch.tensor(background, dtype=torch.uint8, device=self.device).view(1, 1, 3).expand(H, W, 3)

    def visible(self, shot: str | None) -> list[str]:
        """The faces drawn: everyone, or in solo the face of the shot."""
        if self.kind == "solo":
            return [shot] if shot is not None else self.names[:1]
        return list(self.names)

    def direction(self, listener: str, speaker: str | None) -> float:
        """-1 .. 1: where ``speaker`` is seen from ``listener`` (+ = to the picture's right, which
        is the subject's left: + head yaw). In solo the others are off screen: a fixed side per
        seat."""
        if speaker is None or speaker == listener:
            return 0.0
        if self.kind == "solo":
            return 1.0 if self.names.index(listener) % 2 == 0 else -1.0
        a, b = self.cells[listener], self.cells[speaker]
        dx, dy = (b.fx - a.fx), (b.fy - a.fy)
        return float(np.clip(dx / max(abs(dx) + abs(dy), 1), -1, 1))

    def compose(self, faces: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """The picture [n, H, W, 3] uint8: the background, each face of ``faces`` ([n, h, w, 3]
        uint8, fitted into its square) in its cell, its caption under it."""
        W, H = self.size
        out = self.background.to(self.device).unsqueeze(0).expand(n, H, W, 3).clone()
        for name, frames in faces.items():
            cell = self.cells[name]
            img = self._fit(frames.to(self.device))
            h, w = img.shape[1:3]
            x, y = cell.fx + (cell.side - w) // 2, cell.fy + (cell.side - h) // 2
            out[:, y:y + h, x:x + w] = img
            cap = self.captions.get(name)
            if cap is not None:
                cw, ch = cap.size
                y = cell.fy + cell.side // 24 if self.captions_top else cell.fy + cell.side - ch - cell.side // 24
                cap.paste(out, cell.fx + (cell.side - cw) // 2, y)
        return out

    def _fit(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames scaled to fit the face square, keeping their aspect (a twin's own size)."""
        h, w = frames.shape[1:3]
        side = self.face_side
        if (h, w) == (side, side) or (max(h, w) == side):
            return frames
        s = side / max(h, w)
        nh, nw = max(int(round(h * s)), 1), max(int(round(w * s)), 1)
        x = frames.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=s < 1)
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Director:
    """Who is on screen in the solo layout: a cut to the line's speaker at a line's start, once
    the current shot has lasted ``min_shot_s`` (else the shot holds and the line is heard off
    screen). ``shot`` is the face on screen."""

    def __init__(self, min_shot_s: float) -> None:
        self.min_shot_s = min_shot_s
        self.shot: str | None = None
        self.since = 0.0
        self.cuts = 0

    def line_starts(self, speaker: str, t: float) -> str:
        if self.shot is None:
            self.shot, self.since = speaker, t
        elif speaker != self.shot and t - self.since >= self.min_shot_s - 1e-9:
            self.shot, self.since = speaker, t
            self.cuts += 1
        return self.shot
