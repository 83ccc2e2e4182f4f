"""Compositing on top of the warped portrait: the mouth interior where the lips part, and the
upper eyelids sliding down over the eyes in a blink.

A warp can only move existing pixels; when a closed mouth opens, the gap between the lips has no
source pixels (the warp smears the lip line into it). `MouthPainter` paints what a real open mouth
shows, shaded from the portrait's own colours so it fits photos, black-and-white pictures and
paintings alike: a dark cavity, the upper teeth hanging from the upper lip, lower teeth and tongue
appearing as the jaw opens, faint gaps between incisors, soft 1-px edges.

A warp cannot close an eye either: squeezing the eye opening to nothing leaves a slit of iris
and white (the face mesh read such a "closed" eye as 46-73 % open, so `facecast eval` counted
3 blinks/min where 15 were drawn). `LidPainter` / `paint_lids` close that slit with the skin
around it and a lash line over the last part of a blink.

Painting works in face-aligned coordinates (a across the mouth, b towards the chin), so a tilted
head is fine. The per-portrait renderer paints only the frames whose lips part, inside the box
their openings span (decided on the host from the displacements it already has); the batched
GPU renderer paints every frame in a fixed per-face window (static shapes, no host decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import landmarks as lm
from ..types import MOTION_INDEX, Portrait
from .warp import interp_columns

# The lip contours as lists (numpy fancy indices; facecast.landmarks holds tuples).
_LIP_IN_UP = list(lm.LIPS_INNER_UPPER)
_LIP_IN_LO = list(lm.LIPS_INNER_LOWER)
_LIP_OUT_UP = list(lm.LIPS_OUTER_UPPER)
_LIP_OUT_LO = list(lm.LIPS_OUTER_LOWER)

def _lip_colour(image: np.ndarray, pts: np.ndarray, out_up, in_up, out_lo, in_lo) -> np.ndarray:
    """Median RGB of pixels half-way between outer and inner lip contours: [3] float."""
    mids = np.concatenate([(pts[out_up, :2] + pts[in_up, :2]) / 2, (pts[out_lo, :2] + pts[in_lo, :2]) / 2])
    H, W = image.shape[:2]
    xs = np.clip(mids[:, 0].round().astype(int), 0, W - 1)
    ys = np.clip(mids[:, 1].round().astype(int), 0, H - 1)
    return np.median(image[ys, xs].astype(np.float32), axis=0)


class MouthPainter:
    """Paints the mouth interior into warped frames of one portrait."""

    def __init__(self, portrait: Portrait, rig, device: torch.device):
        self.up_idx = torch.tensor(_LIP_IN_UP, device=device)
        self.lo_idx = torch.tensor(_LIP_IN_LO, device=device)
        pts = portrait.face.points
        ff = rig.ff
        u = ff.iod
        self.rest_gap = 0.9 * rig.rest_gap * u  # px
        self.rest = torch.from_numpy(rig.points.astype(np.float32)).to(device)  # [L, 2]

        self.up_np, self.lo_np = np.array(_LIP_IN_UP), np.array(_LIP_IN_LO)
        self.rest_np = rig.points.astype(np.float32)
        self.ey_np = ff.ey.astype(np.float32)
        self.size = portrait.image.shape[1], portrait.image.shape[0]

        img = portrait.image.astype(np.float32)
        lip = _lip_colour(portrait.image, pts, _LIP_OUT_UP, _LIP_IN_UP, _LIP_OUT_LO, _LIP_IN_LO)
        face_px = img[int(max(ff.origin[1] - 1.2 * u, 0)):int(ff.origin[1]), int(max(ff.origin[0] - 0.8 * u, 0)):int(ff.origin[0] + 0.8 * u)]
        light = float(np.clip(face_px.mean() / 150.0, 0.45, 1.15)) if face_px.size else 1.0
        # Desaturate teeth/tongue as much as the portrait itself is desaturated (b/w photos).
        sat = float(np.clip((lip.max() - lip.min()) / 60.0, 0.0, 1.0))
        grey = lip.mean()
        teeth = np.array([212.0, 204.0, 190.0]) * light
        teeth = teeth * sat + teeth.mean() * (1 - sat)
        tongue = np.array([lip[0] * 0.7, lip[1] * 0.45, lip[2] * 0.45])
        tongue = tongue * sat + grey * 0.7 * (1 - sat)
        cavity = lip * 0.12 + 4.0
        t = lambda c: torch.tensor(np.asarray(c, np.float32), device=device).view(1, 3, 1)  # noqa: E731
        v = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=device).reshape(1, 1, -1)  # noqa: E731
        self.consts = MouthConsts(origin=v(ff.origin), ex=v(ff.ex), ey=v(ff.ey),
                                  u=torch.tensor([[u]], dtype=torch.float32, device=device),
                                  rest_gap=torch.tensor([[self.rest_gap]], dtype=torch.float32, device=device),
                                  teeth=t(teeth), tongue=t(tongue), cavity=t(cavity))

    def open_frames(self, disp: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """Host-side: which frames part their lips beyond the rest gap, and the pixel box
        (x0, y0, x1, y1) holding all their mouth openings. disp: float32 [B, L, 2] px.
        Computed from the same host-side displacements the renderer uploads, so deciding what to
        paint costs no device synchronisation."""
        up = self.rest_np[self.up_np][None] + disp[:, self.up_np]
        lo = self.rest_np[self.lo_np][None] + disp[:, self.lo_np]
        gap = ((lo - up) @ self.ey_np)[:, 2:-2].max(1)
        idx = np.nonzero(gap > self.rest_gap + 0.6)[0]
        if idx.size == 0:
            return idx, None
        pts = np.concatenate([up[idx], lo[idx]], 1).reshape(-1, 2)
        W, H = self.size
        x0, y0 = np.floor(pts.min(0) - 2).astype(int)
        x1, y1 = np.ceil(pts.max(0) + 3).astype(int)
        return idx, (max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H))

    def paint_frames(self, frames: torch.Tensor, params: np.ndarray, disp_np: np.ndarray, disp: torch.Tensor) -> torch.Tensor:
        """Paint the mouth interior into uint8 frames [B, H, W, 3] (in place) where lips part."""
        idx, box = self.open_frames(disp_np)
        if box is None:
            return frames
        x0, y0, x1, y1 = box
        sel = torch.from_numpy(idx).to(frames.device)
        crop = frames[sel, y0:y1, x0:x1].permute(0, 3, 1, 2).float()
        ys, xs = torch.meshgrid(torch.arange(y0, y1, device=frames.device, dtype=torch.float32),
                                torch.arange(x0, x1, device=frames.device, dtype=torch.float32), indexing="ij")
        pix = torch.stack([xs, ys], -1).reshape(-1, 2)
        crop = self.paint(crop, pix, params[idx], disp[sel])
        frames[sel, y0:y1, x0:x1] = crop.permute(0, 2, 3, 1).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return frames

    def paint(self, img: torch.Tensor, pix: torch.Tensor, params: np.ndarray, disp: torch.Tensor) -> torch.Tensor:
        """img float [B, 3, h, w] (0..255), pix [h*w, 2] the pixel coordinates of its pixels,
        params [B, P], disp [B, L, 2] px -> painted img [B, 3, h, w]."""
        up = self.rest[self.up_idx][None] + disp[:, self.up_idx]  # [B, 11, 2]
        lo = self.rest[self.lo_idx][None] + disp[:, self.lo_idx]
        jaw = torch.from_numpy(params[:, MOTION_INDEX["jaw_open"]]).to(img.device)
        lift = torch.from_numpy(params[:, MOTION_INDEX["upper_lip"]]).to(img.device)
        return paint_mouth(img, pix[None], up, lo, jaw, lift, self.consts)


@dataclass(frozen=True)
class MouthConsts:
    """Per-face constants of the mouth painter, each with a leading dim of 1 (one face) or B
    (one row per frame, gathered from several faces by the batched GPU renderer).

    origin [B, 1, 2] px, ex/ey [B, 1, 2] unit axes, u [B, 1] inter-ocular px, rest_gap [B, 1] px,
    teeth/tongue/cavity [B, 3, 1] RGB 0..255.
    """

    origin: torch.Tensor
    ex: torch.Tensor
    ey: torch.Tensor
    u: torch.Tensor
    rest_gap: torch.Tensor
    teeth: torch.Tensor
    tongue: torch.Tensor
    cavity: torch.Tensor

    def take(self, index: torch.Tensor) -> "MouthConsts":
        return MouthConsts(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def stack(items: list["MouthConsts"]) -> "MouthConsts":
        return MouthConsts(*(torch.cat([getattr(c, f.name) for c in items]) for f in fields(MouthConsts)))


def paint_mouth(img: torch.Tensor, pix: torch.Tensor, up: torch.Tensor, lo: torch.Tensor, jaw: torch.Tensor,
                lift: torch.Tensor, c: MouthConsts) -> torch.Tensor:
    """Paint the mouth interior.

    img float [B, 3, h, w] (0..255); pix [B or 1, h*w, 2] image coordinates of img's pixels;
    up/lo [B, 11, 2] inner upper/lower lip contours (corner to corner) in image px;
    jaw/lift [B] motion parameters; c: constants with leading dim B or 1. -> [B, 3, h, w].
    """
    B, _, crop_h, crop_w = img.shape
    u = c.u

    def ab(p):  # face-aligned coordinates: a across the mouth, b towards the chin
        q = p - c.origin
        return (q * c.ex).sum(-1), (q * c.ey).sum(-1)

    ua, ub = ab(up)
    la, lb = ab(lo)
    pa, pb = ab(pix)
    pa = pa.expand(B, -1).contiguous()
    pb = pb.expand(B, -1)
    bu = interp_columns(pa, ua, ub)  # upper inner lip height above each pixel column [B, N]
    bl = interp_columns(pa, la, lb)
    left = torch.minimum(ua[:, :1], la[:, :1])
    right = torch.maximum(ua[:, -1:], la[:, -1:])
    gap = (bl - bu).clamp(min=0)
    inside = ((pb - bu + 0.5).clamp(0, 1) * (bl - pb + 0.5).clamp(0, 1)
              * ((pa - left) / 1.5).clamp(0, 1) * ((right - pa) / 1.5).clamp(0, 1))
    # Fade the painted interior in only as the lips part beyond their rest gap, so a portrait
    # that already shows its teeth keeps them at rest.
    inside = inside * ((gap - c.rest_gap - 0.6) / (0.03 * u)).clamp(0, 1)
    half = ((right - left) / 2).clamp(min=1.0)
    h = (pa - (left + right) / 2) / half  # -1..1 across the mouth
    jaw, lift = jaw[:, None], lift[:, None]

    # Cavity: dark, darkest in the middle (depth).
    shade = 0.55 + 0.45 * h.abs()
    colour = c.cavity * shade[:, None]
    # Tongue: a soft ellipse resting on the lower teeth, visible as the jaw opens.
    tb = (pb - (bl - 0.3 * gap)) / (0.45 * gap + 1e-3)
    tongue = (1 - (h / 0.6) ** 2 - tb ** 2).clamp(0, 1).sqrt() * (gap > 0.12 * u)
    tongue_shade = (0.65 + 0.35 * (1 - tb.abs().clamp(0, 1)))
    colour = colour * (1 - tongue[:, None]) + c.tongue * (tongue * tongue_shade)[:, None]
    # Lower teeth: a thin band above the lower lip once the mouth is well open.
    lower_h = 0.07 * u * ((gap - 0.16 * u) / (0.15 * u)).clamp(0, 1)
    lower = ((pb - (bl - lower_h)) / 1.0 + 0.5).clamp(0, 1) * (lower_h > 0.5)
    # Upper teeth: from the upper lip down to a fixed edge below the rest lip line.
    edge = bu + (0.05 * lift + 0.035 * jaw) * u + 0.085 * u * (1 - 0.35 * h ** 2)
    upper = ((edge - pb) / 1.0 + 0.5).clamp(0, 1)
    w_inc = 0.115 * u
    frac = pa / w_inc - torch.round(pa / w_inc)
    gaps = 1 - 0.15 * torch.exp(-(frac / 0.07) ** 2) * (h.abs() < 0.7)
    teeth_shade = (1 - 0.7 * h ** 2) * gaps
    teeth_alpha = torch.maximum(upper, lower)
    teeth_col = c.teeth * (teeth_shade * torch.where(upper >= lower, 1.0, 0.8))[:, None]
    colour = colour * (1 - teeth_alpha[:, None]) + teeth_col * teeth_alpha[:, None]
    # Shadow under the upper lip on the teeth.
    colour = colour * (1 - 0.35 * ((bu + 0.025 * u - pb) / (0.025 * u)).clamp(0, 1))[:, None]

    a = inside.reshape(B, 1, crop_h, crop_w)
    col = colour.reshape(B, 3, crop_h, crop_w).to(img.dtype)
    return torch.lerp(img, col, a.to(img.dtype))
