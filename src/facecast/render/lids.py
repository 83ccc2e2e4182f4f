"""Blinks: the upper eyelid drawn over the eye (step 5 of the package docstring).

The rig's warp brings the upper lid down to the lower one, but a warp can only move existing
pixels: it squeezes the eye into a slit of iris and white and stretches the portrait's lashes
into a dark smear above it. The face mesh read such a "closed" eye as 0.2-0.7 of open, and up
close it looked like a squint. `paint_lids` draws the lid in front of what the warp left:

- the lid's skin from above the portrait's (stretched) lashes down to the lid margin, in the
  colour of the portrait's skin above its lashes (measured at three places across each eye,
  `LidConsts.of`), darker towards the margin and, near full closure, shading into the lower
  lid's skin; its top edge blends into the warped skin above;
- the lash line along the margin, in the colour of the portrait's own lashes, thinning towards
  the corners;
- the lid's shadow on the eye just below the margin while the eye is still partly open;
- at full closure, the lower lid's skin from the margin to a little below the lower lid
  landmarks (the mesh often puts them above the last row of white).

The painting fades in over the first 15 % of the closure, so an open eye is untouched (bit for
bit at blink 0) and the lashes do not pop. At a full blink no iris or white is left: on the 7
shared portraits the face mesh reads 0.10-0.25 of the open eye (0.41 before). Everything is
drawn at the output resolution with soft edges, in face-aligned coordinates (a along the eye
line, b towards the chin), from per-face constants, so the batched renderer draws the same.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import landmarks as lm
from ..types import MOTION_INDEX
from .warp import interp_columns, pixel_grid

LASH_HEIGHT = (0.08, 0.25)
"""Range of the height of the portrait's lash band above the upper lid landmarks (painted over),
in eye widths; measured on each portrait (`_lash_band`)."""
LID_COVER = 0.15
"""How far above the lash band the lid is painted, in eye widths: the warp stretches the
portrait's lashes down over the eye, and the lid covers them."""
LASH_WIDTH = 0.045
"""Thickness of the painted lash line, in eye widths (at least 1 px)."""


@dataclass(frozen=True)
class LidConsts:
    """Per-face constants of the lid painter, leading dim 1 (one face) or B (gathered per frame).
    Per eye (dim 1 of size 2: the subject's right eye first, as lm.EYES):

    ex, ey [B, 2]: the face's unit axes (eye line, towards the chin).
    lid [B, 2, 3, 3]: RGB 0..255 of the closed lid at 3 places across the eye (inner end,
        middle, outer end in the contour's order): the portrait's skin above the lashes.
    under [B, 2, 3]: RGB of the lower lid's skin.  lash [B, 2, 3]: RGB of the lashes.
    lash_h, lash_w [B, 2]: px, height of the portrait's lash band above the upper lid landmarks
        (covered by the lid) and thickness of the painted lash line.
    """

    ex: torch.Tensor
    ey: torch.Tensor
    lid: torch.Tensor
    under: torch.Tensor
    lash: torch.Tensor
    lash_h: torch.Tensor
    lash_w: torch.Tensor

    @staticmethod
    def of(image: np.ndarray, rig, device) -> "LidConsts":
        """The constants of the face ``rig`` over the picture ``image`` (uint8 [H, W, 3])."""
        ff = rig.ff
        pts = rig.points
        out: dict[str, list] = {k: [] for k in ("lid", "under", "lash", "lash_h", "lash_w")}
        for upper, lower in lm.EYES:
            up, lo = pts[list(upper), :2], pts[list(lower), :2]
            ew = float(np.linalg.norm(up[-1] - up[0]))
            h = _lash_band(image, up, ff.ey, ew)
            out["lash_h"].append(h + 0.5)
            out["lash_w"].append(max(1.0, LASH_WIDTH * ew))
            out["lash"].append(_robust_colour(_band(image, up, -ff.ey, 0.0, h, (0.15, 0.85)), 0.0, 0.2))
            out["lid"].append([_robust_colour(_band(image, up, -ff.ey, h + 1.0, h + 1.0 + 0.22 * ew, r), 0.5, 0.9)
                               for r in ((0.05, 0.38), (0.33, 0.67), (0.62, 0.95))])
            out["under"].append(_robust_colour(_band(image, lo, ff.ey, 0.06 * ew, 0.2 * ew, (0.15, 0.85)), 0.3, 0.8))
        f = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=device)[None]  # noqa: E731
        return LidConsts(f(ff.ex), f(ff.ey), *(f(out[k]) for k in ("lid", "under", "lash", "lash_h", "lash_w")))

    def to(self, device) -> "LidConsts":
        return LidConsts(*(getattr(self, k.name).to(device) for k in fields(self)))

    def take(self, index: torch.Tensor) -> "LidConsts":
        return LidConsts(*(getattr(self, k.name)[index] for k in fields(self)))

    def eye(self, e: int) -> tuple[torch.Tensor, ...]:
        """The arguments of `paint_lids` after blink for eye ``e``."""
        return self.ex, self.ey, self.lid[:, e], self.under[:, e], self.lash[:, e], self.lash_h[:, e], self.lash_w[:, e]

    @staticmethod
    def stack(items: list["LidConsts"]) -> "LidConsts":
        return LidConsts(*(torch.cat([getattr(c, k.name) for c in items]) for k in fields(LidConsts)))


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _band(image: np.ndarray, contour: np.ndarray, away: np.ndarray, d0: float, d1: float,
          span: tuple[float, float]) -> np.ndarray:
    """RGB float32 [n, 3] of the pixels between d0 and d1 px from ``contour`` [K, 2] in the
    direction ``away`` [2], over the fraction ``span`` of its length."""
    H, W = image.shape[:2]
    t = np.linspace(span[0], span[1], 16)
    base = np.stack([np.interp(t * (len(contour) - 1), np.arange(len(contour)), contour[:, i]) for i in (0, 1)], 1)
    offs = np.linspace(d0, max(d1, d0 + 0.5), 8)
    p = base[:, None, :] + offs[None, :, None] * away[None, None, :]
    xs = np.clip(p[..., 0].round().astype(int), 0, W - 1).ravel()
    ys = np.clip(p[..., 1].round().astype(int), 0, H - 1).ravel()
    return image[ys, xs].astype(np.float32)


def _robust_colour(px: np.ndarray, q0: float, q1: float) -> np.ndarray:
    """Mean RGB of the pixels whose luminance lies between its quantiles q0 and q1."""
    lum = px @ _LUMA
    lo, hi = np.quantile(lum, q0), np.quantile(lum, q1)
    sel = px[(lum >= lo) & (lum <= hi)]
    return sel.mean(0) if len(sel) else px.mean(0)


def _lash_band(image: np.ndarray, up: np.ndarray, ey: np.ndarray, ew: float) -> float:
    """Height (px) of the dark band of lashes above the upper lid contour ``up`` [K, 2]: along
    16 columns of its middle 70 %, the distance up from the contour to the first pixel as light as
    the skin above (80 % of the 70th percentile of the luminance 0.2-0.4 eye widths up);
    the median over the columns, within LASH_HEIGHT."""
    H, W = image.shape[:2]
    lum = image.astype(np.float32) @ _LUMA
    t = np.linspace(0.15, 0.85, 16)
    base = np.stack([np.interp(t * (len(up) - 1), np.arange(len(up)), up[:, i]) for i in (0, 1)], 1)
    offs = np.arange(0.0, 0.4 * ew, 0.5)
    p = base[:, None, :] - offs[None, :, None] * ey[None, None, :]
    prof = lum[np.clip(p[..., 1].round().astype(int), 0, H - 1), np.clip(p[..., 0].round().astype(int), 0, W - 1)]
    ref = np.percentile(prof[:, offs >= 0.2 * ew], 70, axis=1, keepdims=True)
    light = prof >= 0.8 * ref
    light[:, -1] = True
    ext = offs[np.argmax(light, axis=1)]
    lo, hi = LASH_HEIGHT
    return float(np.clip(np.median(ext), lo * ew, hi * ew))


class LidPainter:
    """Blinks for the per-portrait renderer: paints the frames whose blink is above 0, inside
    the box each eye's lids span (with room for the lid above them), decided on the host from
    the displacements the renderer already has (no device synchronisation)."""

    def __init__(self, image: np.ndarray, rig, device: torch.device):
        self.rest = rig.points.astype(np.float32)  # [L, 2] px
        self.consts = LidConsts.of(image, rig, device)
        self.margin = self.consts.lash_h[0].cpu().numpy() + self.consts.lash_w[0].cpu().numpy() * 3 + 4.0  # [2] px
        self.size = rig.size  # (W, H)

    def paint_frames(self, frames: torch.Tensor, params: np.ndarray, disp_np: np.ndarray) -> torch.Tensor:
        """Paint blinks into uint8 frames [B, H, W, 3] (in place); params [B, P], disp_np
        [B, L, 2] px (the rig's displacements of these frames)."""
        blink = params[:, MOTION_INDEX["blink"]]
        idx = np.nonzero(blink > 1e-4)[0]
        if idx.size == 0:
            return frames
        W, H = self.size
        sel = torch.from_numpy(idx).to(frames.device)
        k = torch.from_numpy(np.ascontiguousarray(blink[idx], np.float32)).to(frames.device)
        for e, (upper, lower) in enumerate(lm.EYES):
            ids = np.array(upper + lower)
            pts = self.rest[ids][None] + disp_np[idx][:, ids]  # [n, 18, 2]
            both = pts.reshape(-1, 2)
            x0, y0 = np.floor(both.min(0) - self.margin[e]).astype(int)
            x1, y1 = np.ceil(both.max(0) + self.margin[e] + 1).astype(int)
            x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            crop = frames[sel, y0:y1, x0:x1].permute(0, 3, 1, 2).float()
            t = torch.from_numpy(pts).to(frames.device)
            origin = torch.tensor([[x0, y0]], dtype=torch.float32, device=frames.device)
            crop = paint_lids(crop, origin, t[:, :len(upper)], t[:, len(upper):], k, *self.consts.eye(e))
            frames[sel, y0:y1, x0:x1] = crop.permute(0, 2, 3, 1).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return frames


def paint_lids(img: torch.Tensor, origin: torch.Tensor, up: torch.Tensor, lo: torch.Tensor, blink: torch.Tensor,
               ex: torch.Tensor, ey: torch.Tensor, lid: torch.Tensor, under: torch.Tensor, lash: torch.Tensor,
               lash_h: torch.Tensor, lash_w: torch.Tensor) -> torch.Tensor:
    """One eye's lid at closure ``blink``.

    img float [B, 3, h, w] (0..255), a crop whose pixel (0, 0) sits at image px ``origin``
    [B or 1, 2]; up/lo [B, K, 2] the upper and lower lid contours as warped (corner to corner
    along ex), image px; blink [B] 0..1; the eye's constants (LidConsts.eye) with leading dim
    B or 1: ex/ey [.., 2], lid [.., 3, 3], under/lash [.., 3], lash_h/lash_w [..] px.
    -> [B, 3, h, w]. At blink 0 the crop is returned unchanged (every weight is 0).
    """
    B, _, h, w = img.shape
    dt = img.dtype
    origin = origin.reshape(-1, 1, 2)
    pix = pixel_grid(0, 0, w, h, img.device).reshape(1, -1, 2) + origin  # [B, N, 2] image px
    ex, ey = ex.reshape(-1, 1, 2), ey.reshape(-1, 1, 2)
    pa, pb = (pix * ex).sum(-1).expand(B, -1).contiguous(), (pix * ey).sum(-1).expand(B, -1)
    ua, ub = (up * ex).sum(-1), (up * ey).sum(-1)
    la, lb = (lo * ex).sum(-1), (lo * ey).sum(-1)
    bu, bl = interp_columns(pa, ua, ub), interp_columns(pa, la, lb)
    left, right = torch.minimum(ua[:, :1], la[:, :1]), torch.maximum(ua[:, -1:], la[:, -1:])
    ew = (right - left).clamp(min=1.0)
    hx = ((2 * pa - left - right) / ew).clamp(-1, 1)  # -1..1 across the eye (contour order)
    arch = (1 - hx * hx).clamp(min=0).sqrt()  # the lid's height profile: 1 in the middle, 0 at the corners
    k = blink.reshape(B, 1).clamp(0, 1)
    fade = _smooth(k / 0.15)
    gap = (bl - bu).clamp(min=0)
    m = bu + k * k * gap                               # the lid margin
    top = bu - (lash_h.reshape(-1, 1) + LID_COVER * ew) * arch - 0.5  # above the portrait's (stretched) lashes
    lw = lash_w.reshape(-1, 1) * (0.55 + 0.45 * arch)
    t = ((pb - top) / (m - top).clamp(min=1.0)).clamp(0, 1)  # 0 at the top of the lid, 1 at its margin
    # The lid's colour across the eye (3 measured places), darker towards the margin and, near
    # full closure, shading into the lower lid's skin.
    lid = lid.reshape(-1, 3, 3)
    xq = (hx / 0.6).clamp(-1, 1)[:, None, :]
    col = torch.where(xq < 0, torch.lerp(lid[:, 1, :, None], lid[:, 0, :, None], -xq),
                      torch.lerp(lid[:, 1, :, None], lid[:, 2, :, None], xq))  # [B, 3, N]
    under = under.reshape(-1, 3, 1)
    col = torch.lerp(col, under.expand_as(col), (0.35 * k * t * t)[:, None, :])
    col = col * (1 - 0.10 * t * t)[:, None, :]
    soft = 1.0 + 0.04 * ew
    in_x = ((pa - left) / soft).clamp(0, 1) * ((right - pa) / soft).clamp(0, 1)
    feather = 1.0 + 0.1 * ew  # the lid's top edge blends into the skin above over this many px
    cover = ((pb - top + feather) / feather).clamp(0, 1) * (m - pb + 0.5).clamp(0, 1) * in_x * fade
    # The lid's shadow on the eye below the margin, while the eye is open.
    below_m = ((pb - m) / (0.08 * ew)).clamp(min=0)
    shadow = 0.35 * torch.exp(-below_m) * (pb > m) * (pb < bl) * in_x * fade
    # Closed: the lower lid's skin up to the margin, a little below the lower lid landmarks too
    # (the mesh often puts them above the last row of white).
    dl = 0.06 * ew
    low = (pb - m).clamp(0, 1) * ((bl + dl - pb) / (dl + 1e-3)).clamp(0, 1) * in_x * _smooth((k - 0.8) / 0.2)
    d = (pb - m - 0.3 * lw) / lw
    lashes = torch.exp(-d * d) * (0.4 + 0.6 * arch) * in_x * fade
    r = lambda x: x.reshape(B, -1, h, w).to(dt)  # noqa: E731
    out = img * (1 - r(shadow))
    out = torch.lerp(out, r(col), r(cover))
    out = torch.lerp(out, under.reshape(-1, 3, 1, 1).to(dt) * 0.97, r(low))
    return torch.lerp(out, lash.reshape(-1, 3, 1, 1).to(dt), r(lashes))


def _smooth(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)

