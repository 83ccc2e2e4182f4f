"""The mouth, drawn over the warped frame: the lips from the portrait's own lips, and the
interior where they part (step 5 of the package docstring).

The warp moves the lip landmarks, but between them it can only stretch or squeeze pixels on a
coarse grid: a closing mouth squeezes the portrait's teeth (or the dark line between its lips)
into a jagged sliver, and an opening one smears the lip line. `paint_mouth` redraws the whole
lip region at the output resolution instead, in face-aligned coordinates (a across the mouth,
b towards the chin):

- the lips: each output column crosses four contours (outer upper, inner upper, inner lower,
  outer lower lip, as the rig moved them). The upper lip between its two contours is read from
  the portrait's upper lip between the same contours at rest, linearly along the column; the
  lower lip likewise. Exact at every pixel, so the lip line has no stair-steps, and a closed
  mouth is the portrait's own lips meeting (where the portrait's lips were apart at rest, they
  meet on a soft seam, the lip's inner edge never reading the teeth behind it);
- the interior between the inner contours, with area-true 1-px edges (a gap under a pixel draws
  a faint line, not a sliver): the portrait's own interior (teeth showing at rest) stays
  attached to the upper lip, so a closing lower lip covers it; below it, or in a mouth closed
  at rest, `interior` paints cavity, tongue and teeth (teeth only once the gap is wide enough
  to draw them);
- the warp's own result outside the outer contours, blended in over a pixel.

The per-portrait renderer paints the frames whose mouth moves, inside the box their lips span
(decided on the host from the displacements it already has); the batched GPU renderer paints
every frame in a fixed per-face window (static shapes, no host decisions).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import landmarks as lm
from ..types import MOTION_INDEX, Portrait

_CORNERS = lm.LIPS_OUTER_UPPER[0], lm.LIPS_OUTER_UPPER[-1]
CONTOURS: tuple[int, ...] = (lm.LIPS_OUTER_UPPER + (_CORNERS[0],) + lm.LIPS_INNER_UPPER[1:-1] + (_CORNERS[1],)
                             + (_CORNERS[0],) + lm.LIPS_INNER_LOWER[1:-1] + (_CORNERS[1],) + lm.LIPS_OUTER_LOWER)
"""The four lip contours (11 points each, corner to corner), in the order `paint_mouth` reads
them: outer upper, inner upper, inner lower, outer lower. The inner contours end at the outer
corners, not at the mesh's inner corners: the dark corners of a mouth open at rest belong to
its opening (they close with it)."""
_K = 11
_SUB = 3  # each contour segment is drawn as a Catmull-Rom curve through this many points


def _spline_matrix(k: int, sub: int) -> np.ndarray:
    """[(k-1)*sub+1, k] weights: points along the uniform Catmull-Rom curve through k points
    (end points repeated), so the lip outlines are smooth curves, not polygons."""
    rows = []
    for i in range(k - 1):
        for j in range(sub):
            t = j / sub
            w = np.array([(-t ** 3 + 2 * t * t - t) / 2, (3 * t ** 3 - 5 * t * t + 2) / 2,
                          (-3 * t ** 3 + 4 * t * t + t) / 2, (t ** 3 - t * t) / 2])
            r = np.zeros(k)
            for m, idx in enumerate((i - 1, i, i + 1, i + 2)):
                r[min(max(idx, 0), k - 1)] += w[m]
            rows.append(r)
    last = np.zeros(k)
    last[-1] = 1.0
    return np.array(rows + [last], np.float32)


_SPLINE = _spline_matrix(_K, _SUB)
_MOUTH = [MOTION_INDEX[k] for k in ("jaw_open", "lip_spread", "lip_round", "lip_close", "labiodental", "upper_lip",
                                    "smile")]


@dataclass(frozen=True)
class MouthConsts:
    """Per-face constants of the mouth painter, each with a leading dim of 1 (one face) or B
    (one row per frame, gathered from several faces by the batched GPU renderer).

    origin [B, 1, 2] px, ex/ey [B, 1, 2] unit axes, u [B, 1] inter-ocular px,
    rest [B, 44, 2] the four lip contours (`CONTOURS`) at rest, px of the source picture,
    teeth/tongue/cavity/lip [B, 3, 1] RGB 0..255 (`portrait_light`),
    soft [B, 1] px: how soft the portrait is (its edges' blur), tilt [B, 1]: light from the
    subject's left (+) or right (-) across the mouth, -0.3..0.3, real [B, 1]: 1 where the
    portrait shows something between its lips at rest (its own interior is drawn), else 0.
    """

    origin: torch.Tensor
    ex: torch.Tensor
    ey: torch.Tensor
    u: torch.Tensor
    rest: torch.Tensor
    teeth: torch.Tensor
    tongue: torch.Tensor
    cavity: torch.Tensor
    lip: torch.Tensor
    soft: torch.Tensor
    tilt: torch.Tensor
    real: torch.Tensor

    @staticmethod
    def of(portrait: Portrait, rig, device) -> "MouthConsts":
        pts = rig.points
        ff = rig.ff
        light = portrait_light(portrait.image, pts, ff)
        t = lambda c: torch.tensor(np.asarray(c, np.float32), device=device).view(1, 3, 1)  # noqa: E731
        v = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=device).reshape(1, 1, -1)  # noqa: E731
        s = lambda x: torch.tensor([[float(x)]], dtype=torch.float32, device=device)  # noqa: E731
        return MouthConsts(origin=v(ff.origin), ex=v(ff.ex), ey=v(ff.ey), u=s(ff.iod),
                           rest=torch.as_tensor(pts[list(CONTOURS), :2].astype(np.float32), device=device)[None],
                           teeth=t(light["teeth"]), tongue=t(light["tongue"]), cavity=t(light["cavity"]),
                           lip=t(light["lip"]), soft=s(light["soft"]), tilt=s(light["tilt"]),
                           real=s(float(has_interior(pts, ff))))

    def to(self, device) -> "MouthConsts":
        return MouthConsts(*(getattr(self, f.name).to(device) for f in fields(self)))

    def take(self, index: torch.Tensor) -> "MouthConsts":
        return MouthConsts(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def stack(items: list["MouthConsts"]) -> "MouthConsts":
        return MouthConsts(*(torch.cat([getattr(c, f.name) for c in items]) for f in fields(MouthConsts)))


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def has_interior(pts: np.ndarray, ff) -> bool:
    """Whether the portrait shows anything between its lips at rest (teeth, a dark gap): its
    inner contours more than half a pixel apart somewhere off the corners."""
    c = pts[list(CONTOURS), :2].reshape(4, _K, 2)
    return bool((((c[2] - c[1]) @ ff.ey)[2:-2] > 0.5).any())


def portrait_light(image: np.ndarray, pts: np.ndarray, ff) -> dict:
    """What the painted mouth takes from the portrait: colours (RGB float [3]) of its lips, of
    teeth, tongue and cavity in its light, how soft it is and where its light comes from.

    lip: the median between the lip contours. teeth: the portrait's own teeth where it shows
    them (the brightest tenth of the pixels between its lips), else off-white at 95 % of the
    face's white level (its 97th luminance percentile: eye whites, highlights; at least 1.2x the
    skin), tinted a little by the skin; desaturated as much as the lips are (black-and-white pictures). tongue and
    cavity: the lip colour, darker. soft: the blur (px) of the picture around the mouth, from how
    much of its gradient a 1-px Gaussian keeps (r -> r / sqrt(1 - r^2): an upscaled face keeps
    most of it). tilt: the luminance difference of the cheeks beside the mouth."""
    import cv2

    u = ff.iod
    H, W = image.shape[:2]
    img = image.astype(np.float32)
    c = pts[list(CONTOURS), :2].reshape(4, _K, 2)

    def at(p):
        return img[np.clip(np.round(p[..., 1]).astype(int), 0, H - 1), np.clip(np.round(p[..., 0]).astype(int), 0, W - 1)]

    lip = np.median(at(np.concatenate([(c[0] + c[1]) / 2, (c[2] + c[3]) / 2])), axis=0)
    sat = float(np.clip((lip.max() - lip.min()) / 60.0, 0.0, 1.0))
    o = ff.origin
    box = img[int(max(o[1] - 1.4 * u, 0)):int(min(o[1] + 0.5 * u, H)), int(max(o[0] - 0.8 * u, 0)):int(min(o[0] + 0.8 * u, W))]
    lum = box.reshape(-1, 3) @ _LUMA if box.size else np.array([150.0])
    skin = np.median(box.reshape(-1, 3), axis=0) if box.size else np.array([180.0, 150.0, 130.0])
    white = float(np.percentile(lum, 97))
    # The portrait's own teeth: samples between the inner contours, where they are apart.
    ts = np.linspace(0.1, 0.9, 7)
    inner = np.concatenate([c[1][:, None] + (c[2] - c[1])[:, None] * ts[None, :, None]], 0)[2:-2].reshape(-1, 2)
    gaps = (c[2] - c[1]) @ ff.ey
    if np.median(gaps[2:-2]) > 0.04 * u:
        px = at(inner)
        pl = px @ _LUMA
        teeth = px[pl >= np.quantile(pl, 0.9)].mean(0)
    else:
        level = float(np.clip(max(0.95 * white, 1.2 * float(skin @ _LUMA)), 120.0, 235.0))
        base = np.array([226.0, 220.0, 208.0]) / 222.0 * level
        teeth = 0.9 * base + 0.1 * base.mean() * skin / max(float(skin.mean()), 1.0)
    teeth = teeth * sat + teeth.mean() * (1 - sat)
    tongue = lip * np.array([0.85, 0.60, 0.60])
    tongue = tongue * sat + tongue.mean() * (1 - sat)
    cavity = lip * 0.38 + 2.0
    # Softness and light direction around the mouth.
    x0, y0 = np.floor(c.reshape(-1, 2).min(0) - 0.3 * u).astype(int)
    x1, y1 = np.ceil(c.reshape(-1, 2).max(0) + 0.3 * u).astype(int)
    g = img[max(y0, 0):min(y1, H), max(x0, 0):min(x1, W)] @ _LUMA
    soft = 1.0
    if g.shape[0] > 4 and g.shape[1] > 4:
        def grad(a):
            return float(np.hypot(np.diff(a, axis=1)[:-1], np.diff(a, axis=0)[:, :-1]).mean())
        r = float(np.clip(grad(cv2.GaussianBlur(g, (0, 0), 1.0)) / max(grad(g), 1e-6), 0.3, 0.95))
        soft = float(np.clip(r / np.sqrt(1 - r * r), 0.5, 3.0))
    cheek = [float(np.median(at(o[None] + np.stack([k * 0.5 * u + np.zeros(5), np.linspace(-0.25, 0.05, 5) * u], 1)
                                @ np.stack([ff.ex, ff.ey])) @ _LUMA)) for k in (-1.0, 1.0)]
    tilt = float(np.clip((cheek[1] - cheek[0]) / max(cheek[0] + cheek[1], 1.0), -0.3, 0.3))
    return {"lip": lip, "teeth": teeth, "tongue": tongue, "cavity": cavity, "soft": soft, "tilt": tilt}


class MouthPainter:
    """Draws the mouth into warped frames of one portrait (the per-portrait renderer's painter)."""

    def __init__(self, portrait: Portrait, rig, device: torch.device):
        self.consts = MouthConsts.of(portrait, rig, device)
        self.idx = np.array(CONTOURS)
        self.rest_np = rig.points[self.idx].astype(np.float32)  # [44, 2]
        self.size = portrait.image.shape[1], portrait.image.shape[0]
        W, H = self.size
        # The source the lips are read from: the portrait around its mouth (room for the lips'
        # own motion and the interior below the upper lip).
        u = rig.ff.iod
        x0, y0 = np.floor(self.rest_np.min(0) - 0.4 * u).astype(int)
        x1, y1 = np.ceil(self.rest_np.max(0) + 0.4 * u).astype(int)
        x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H)
        self.src = torch.from_numpy(portrait.image[y0:y1, x0:x1].astype(np.float32)).permute(2, 0, 1)[None].to(device)
        self.src_origin = torch.tensor([[x0, y0]], dtype=torch.float32, device=device)
        self.real_interior = has_interior(rig.points, rig.ff)

    def moving_frames(self, params: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """Host-side: which frames move the mouth, and the pixel box (x0, y0, x1, y1) holding
        all their lips. disp: float32 [B, L, 2] px. From the same host-side displacements the
        renderer uploads, so deciding what to paint costs no device synchronisation."""
        idx = np.nonzero(np.abs(params[:, _MOUTH]).max(1) > 1e-4)[0]
        if idx.size == 0:
            return idx, None
        pts = (self.rest_np[None] + disp[idx][:, self.idx]).reshape(-1, 2)
        W, H = self.size
        x0, y0 = np.floor(pts.min(0) - 3).astype(int)
        x1, y1 = np.ceil(pts.max(0) + 4).astype(int)
        return idx, (max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H))

    def paint_frames(self, frames: torch.Tensor, params: np.ndarray, disp_np: np.ndarray, disp: torch.Tensor) -> torch.Tensor:
        """Draw the mouth into uint8 frames [B, H, W, 3] (in place) where it moves: only the
        pixels the lips of some frame cover (and the interior only where some frame's lips
        part), found on the host by filling the frames' lip outlines."""
        import cv2

        idx, box = self.moving_frames(params, disp_np)
        if box is None:
            return frames
        x0, y0, x1, y1 = box
        dev = frames.device
        pts = self.rest_np[None] + disp_np[idx][:, self.idx]  # [n, 44, 2]
        outline = np.einsum("mk,bckd->bcmd", _SPLINE, pts.reshape(-1, 4, _K, 2)) - [x0, y0]  # [n, 4, M, 2]
        lips, inside = np.zeros((y1 - y0, x1 - x0), np.uint8), np.zeros((y1 - y0, x1 - x0), np.uint8)
        for o in outline:
            cv2.fillPoly(lips, [np.round(np.concatenate([o[0], o[3][::-1]]) * 4).astype(np.int32)], 1, shift=2)
            cv2.fillPoly(inside, [np.round(np.concatenate([o[1], o[2][::-1]]) * 4).astype(np.int32)], 1, shift=2)
        kernel = np.ones((5, 5), np.uint8)
        lips = cv2.dilate(lips, kernel).ravel()
        active = np.nonzero(lips)[0]
        inner = np.nonzero(cv2.dilate(inside, kernel).ravel()[active])[0]
        sel = torch.from_numpy(idx).to(dev)
        act = torch.from_numpy(active).to(dev)
        crop = frames[sel, y0:y1, x0:x1].reshape(len(idx), -1, 3)
        px = crop[:, act].permute(0, 2, 1).float()  # [n, 3, A]
        ys, xs = np.divmod(active, x1 - x0)
        pix = torch.from_numpy(np.stack([xs + x0, ys + y0], -1).astype(np.float32)).to(dev)[None]
        cur = torch.from_numpy(self.rest_np).to(dev)[None] + disp[sel][:, self.idx]
        p = torch.from_numpy(np.ascontiguousarray(params[idx])).to(dev)
        px = paint_mouth(px, pix, cur, p[:, MOTION_INDEX["jaw_open"]], p[:, MOTION_INDEX["upper_lip"]], self.src,
                         self.src_origin, self.consts, x1 - x0 + y1 - y0 + 3, self.real_interior,
                         torch.from_numpy(inner).to(dev))
        crop[:, act] = px.permute(0, 2, 1).add_(0.5).clamp_(0, 255).to(torch.uint8)
        frames[sel, y0:y1, x0:x1] = crop.reshape(len(idx), y1 - y0, x1 - x0, 3)
        return frames


def paint_mouth(img: torch.Tensor, pix: torch.Tensor, cur: torch.Tensor, jaw: torch.Tensor, lift: torch.Tensor,
                src: torch.Tensor, src_origin: torch.Tensor, c: MouthConsts, columns: int, real_interior: bool = True,
                inner: torch.Tensor | None = None) -> torch.Tensor:
    """Draw the lips and the mouth interior (see the module docstring).

    img float [B, 3, N] (0..255), pixels of the warped frame around the mouth; pix [B or 1, N, 2]
    image px of those pixels; cur [B, 44, 2] the four lip contours (`CONTOURS`) as the rig moved
    them, image px; jaw/lift [B] motion parameters; src float [B or 1, 3, Hs, Ws] the picture
    the lips are read from, its pixel (0, 0) at ``src_origin`` [B or 1, 2] px of ``c.rest``;
    c: constants with leading dim B or 1; columns: how many 1-px columns (along a) the pixels
    span, at least (e.g. crop width + height + 3); real_interior: read the interior the portrait shows
    between its lips at rest (False when no face here has one: the read is skipped); inner:
    indices of the pixels that may lie between the inner lips (None = all), the interior is
    computed there only. -> [B, 3, N].

    Everything that depends only on the column (contour heights and their source points, the
    interior's teeth, tongue and shading across the mouth) is computed once per column, on a
    1-px grid of a, and looked up per pixel; only what varies down a column is per pixel.
    """
    B, _, N = img.shape
    dev, dt = img.device, img.dtype
    org, ex, ey = c.origin, c.ex, c.ey  # [., 1, 2]

    def ab(p):  # face-aligned coordinates: a across the mouth, b towards the chin
        q = p - org
        return (q * ex).sum(-1), (q * ey).sum(-1)

    pa, pb = ab(pix)
    pa, pb = pa.expand(B, -1).contiguous(), pb.expand(B, -1)
    spline = _tables(dev)[0]
    smooth = lambda x: torch.einsum("mk,bckd->bcmd", spline, x.reshape(x.shape[0], 4, _K, 2))  # noqa: E731
    ca, cb = ab(cur)  # [B, 44]: the landmarks (corners, extent)
    M = _SPLINE.shape[0]
    sa, sb = ab(smooth(cur).reshape(B, -1, 2))  # [B, 4 * M]: the smooth outlines
    rest = smooth(c.rest).reshape(c.rest.shape[0], 4 * M, 2).expand(B, -1, -1)
    a0 = torch.floor(pa.min(1, keepdim=True).values) - 1.0  # on whole units of a: the same grid in any window
    G = columns
    ag = a0 + torch.arange(G, device=dev, dtype=torch.float32)[None]  # [B, G]
    # Per column: each contour's height and source point [B, 12, G] ...
    fp = torch.stack([sb, rest[..., 0], rest[..., 1]], 1).reshape(B, 3, 4, M).transpose(1, 2).reshape(4 * B, 3, M)
    geo = _curves(sa.reshape(4 * B, M), fp, ag.repeat_interleave(4, 0)).reshape(B, 12, G)

    def per_pixel(cols, a):  # column features [B, C, G] at pixels of a [B, n]: linear between columns
        gx = (a - a0) * (2.0 / (G - 1)) - 1.0
        grid = torch.stack([gx, torch.zeros_like(gx)], -1)[:, None]  # [B, 1, n, 2]
        return torch.nn.functional.grid_sample(cols[:, :, None], grid, mode="bilinear", padding_mode="border",
                                               align_corners=True)[:, :, 0]  # [B, C, n]

    F = per_pixel(geo, pa)
    ou_b, iu_b, il_b, ol_b = F[:, 0], F[:, 3], F[:, 6], F[:, 9]
    s_ou, s_iu, s_il, s_ol = F[:, 1:3], F[:, 4:6], F[:, 7:9], F[:, 10:12]  # [B, 2, N] source px
    eys = ey.reshape(-1, 2, 1)
    rgap = ((s_il - s_iu) * eys).sum(1)           # the portrait's gap at rest, px
    gap = (il_b - iu_b).clamp(min=0)              # the gap now
    # Where the lips part or close beyond their rest gap, their inner edges are read a little
    # inside the lip: a bilinear read on the contour mixes in what lay between the lips at rest
    # (the teeth of a mouth open at rest; the dark seam of a closed one, which would narrow the
    # opening by a pixel).
    ins = ((rgap - 0.5).clamp(0, 0.7) * ((rgap - gap) / 2.0).clamp(0, 1)
           + 2.4 * ((gap - rgap) / 3.0).clamp(0, 1))[:, None]
    mid = (iu_b + il_b) / 2
    above = pb < mid
    t = torch.where(above, (pb - ou_b) / (iu_b - ou_b).clamp(min=0.5),
                    (ol_b - pb) / (ol_b - il_b).clamp(min=0.5)).clamp(max=1.0)[:, None]
    upper = above[:, None]
    outer_s = torch.where(upper, s_ou, s_ol)
    inner_s = torch.where(upper, s_iu - ins * eys, s_il + ins * eys)
    lip_src = outer_s + t * (inner_s - outer_s)

    def read(p):  # the source picture at source px p [B, 2, N] -> [B, 3, N]
        q = p - src_origin.reshape(-1, 2, 1)
        Hs, Ws = src.shape[2], src.shape[3]
        grid = torch.stack([q[:, 0] * (2.0 / max(Ws - 1, 1)) - 1.0, q[:, 1] * (2.0 / max(Hs - 1, 1)) - 1.0], -1)
        s = src.expand(B, -1, -1, -1) if src.shape[0] == 1 else src
        return torch.nn.functional.grid_sample(s, grid[:, None].to(s.dtype), mode="bilinear", padding_mode="border",
                                               align_corners=True)[:, :, 0].float()

    out = read(lip_src)
    # The interior: the portrait's own (attached to the upper lip, covered by the lower lip as
    # it closes) over the painted one; only at the pixels that may be inside.
    sub = (lambda x: x[..., inner]) if inner is not None else (lambda x: x)  # noqa: E731
    pb_i, iu_i, gap_i, rgap_i = sub(pb), sub(iu_b), sub(gap), sub(rgap)
    below = pb_i - iu_i
    inside = per_pixel(interior_columns(ag, geo[:, 3], geo[:, 6], ca, jaw, lift, c), sub(pa))
    colour = interior_pixels(pb_i, inside, iu_i, gap_i, c)
    if real_interior:
        real = read(sub(s_iu) + below[:, None] * eys)
        real_w = ((rgap_i - below + 1.5).clamp(0, 1) * c.real)[:, None]
        colour = torch.lerp(colour, real, real_w)
    cover = ((torch.minimum(below, sub(il_b) - pb_i) + 0.5).clamp(0, 1) * gap_i.clamp(max=1.0))[:, None]
    # Where the portrait's lips were apart at rest and now meet, a soft seam along the contact.
    seam = ((rgap_i - 1.0).clamp(0, 1) * 0.5 * (1 - gap_i / 2).clamp(0, 1)
            * torch.exp(-((pb_i - sub(mid)) / 0.8) ** 2))[:, None]
    mixed = torch.lerp(torch.lerp(sub(out), colour, cover), c.lip * 0.45, seam)
    if inner is not None:
        out[..., inner] = mixed
    else:
        out = mixed
    # Inside the outer contours (and a pixel beyond), between the outer corners.
    left = torch.minimum(ca[:, :1], ca[:, 3 * _K:3 * _K + 1])
    right = torch.maximum(ca[:, _K - 1:_K], ca[:, 4 * _K - 1:])
    alpha = ((pb - ou_b + 1.0).clamp(0, 1) * (ol_b - pb + 1.0).clamp(0, 1)
             * (pa - left + 1.0).clamp(0, 1) * (right - pa + 1.0).clamp(0, 1))
    return torch.lerp(img, out.to(dt), alpha[:, None].to(dt))


def _curves(xp: torch.Tensor, fp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear curves through (xp, fp) read at x: xp [R, M] (made non-decreasing;
    outside its range the end values), fp [R, C, M], x [R, G] -> [R, C, G]."""
    xp = torch.cummax(xp, dim=1).values.contiguous()
    M = xp.shape[1]
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, M - 1)
    x0, x1 = xp.gather(1, i - 1), xp.gather(1, i)
    t = ((x - x0) / (x1 - x0).clamp(min=1e-6)).clamp(0, 1)[:, None]
    ii = i[:, None].expand(-1, fp.shape[1], -1)
    f0 = fp.gather(2, ii - 1)
    return f0 + t * (fp.gather(2, ii) - f0)


# Widths (mm) of the upper teeth from the midline: central and lateral incisor, canine, two
# premolars, a molar; seen on an arch of radius _ARCH, the corners of the mouth _ARCH_HALF from
# the middle. Their outlines follow from that projection, so they narrow towards the corners
# instead of repeating at one pitch.
_TOOTH_EDGES = (0.0, 8.5, 15.0, 22.5, 29.5, 36.5, 46.0)
_TOOTH_TONE = (1.0, 0.95, 0.9, 0.86, 0.82, 0.78)
_ARCH, _ARCH_HALF = 25.0, 22.0


def _smooth(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


@functools.lru_cache(maxsize=None)
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The painter's constant tables on ``device`` (spline weights, tooth edges, tooth tones),
    made once: a host-to-device copy inside a CUDA graph capture would be an error, and the
    batched renderer's warm-up runs before its capture."""
    f = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=device)  # noqa: E731
    return f(_SPLINE), f(_TOOTH_EDGES), f(_TOOTH_TONE)


def interior_columns(ag: torch.Tensor, bu: torch.Tensor, bl: torch.Tensor, ca: torch.Tensor, jaw: torch.Tensor,
                      lift: torch.Tensor, c: MouthConsts) -> torch.Tensor:
    """The painted interior's features per column: at a [B, G] with the inner lips at heights
    bu/bl [B, G]; ca [B, 44] the contours' a positions; jaw/lift [B]. -> [B, 10, G]:
    cavity shade, tongue top / extent / shade, lower teeth top / extent / shade, upper teeth
    length / extent / shade. (See `interior_pixels` for what they paint.)"""
    u, soft = c.u, c.soft
    gap = (bl - bu).clamp(min=0)
    left, right = ca[:, _K:_K + 1], ca[:, 2 * _K - 1:2 * _K]
    half = ((right - left) / 2).clamp(min=1.0)
    h = ((ag - (left + right) / 2) / half).clamp(-1.2, 1.2)  # -1..1 across the mouth
    h2 = h * h
    front = 1 - _smooth((h.abs() - 0.3) / 0.6)  # 1 in front, 0 in the corners' shadow
    lit = 1 + c.tilt * h
    lift = lift[:, None]
    opened = _smooth(gap / (0.28 * u))
    cavity = (0.3 + 0.7 * opened) * (0.4 + 0.6 * front) * lit
    # Tongue: its surface a low arc above the lower lip.
    t_top = bl - (0.45 * gap).clamp(max=0.14 * u) * (1 - 0.4 * h2)
    tongue = (1 - _smooth((h.abs() - 0.6) / 0.3)) * _smooth((gap - 0.06 * u) / (0.10 * u))
    t_lit = (0.5 + 0.5 * opened) * lit
    # Each tooth: where on the arch this column is, which tooth, and where across it.
    wmm = (h.abs() * _ARCH_HALF / _ARCH).clamp(max=0.999)
    s = _ARCH * torch.asin(wmm)  # mm along the arch from the midline
    _, edges, tones = _tables(ag.device)
    k = torch.bucketize(s, edges).clamp(1, len(_TOOTH_EDGES) - 1)
    lo_e, hi_e = edges[k - 1], edges[k]
    f = ((s - lo_e) / (hi_e - lo_e)).clamp(0, 1)
    tooth_px = (hi_e - lo_e) * half / _ARCH_HALF * torch.sqrt(1 - wmm * wmm)  # its width on screen
    drawn = _smooth((tooth_px - 3.0) / 4.0)  # teeth under ~3 px wide are drawn as one band
    to_gap = torch.minimum(f, 1 - f) * tooth_px  # px to the nearest gap between teeth
    gaps = 0.15 * drawn * torch.exp(-(to_gap / (0.6 + 0.6 * soft)) ** 2)
    tone = tones[k - 1]  # incisors lightest
    rounded = (1 - 0.08 * drawn * (2 * f - 1) ** 2) * (1 - gaps) * (tone + (1 - tone) * (1 - drawn))
    # Lower teeth behind the lower lip, as the jaw drops; upper teeth from the upper lip (longer
    # with it raised), drawn only once the gap is 2-4 px.
    lo_h = 0.04 * u * _smooth((gap - 0.14 * u) / (0.14 * u)) * (1 - 0.5 * h2)
    lower = (lo_h > 0.5) * (1 - _smooth((h.abs() - 0.2) / 0.3))
    up_len = 0.085 * u * (1 + 0.6 * lift) * (1 - 0.35 * h2)
    upper = _smooth((gap - 2.0) / 2.0) * (1 - _smooth((h.abs() - 0.75) / 0.3))
    # Teeth in a barely open mouth are in the lips' shade; light reaches them as it opens.
    shade = (0.5 + 0.5 * opened) * rounded * lit
    return torch.stack([cavity, t_top, tongue, t_lit, bl - lo_h, lower, 0.72 * shade,
                        up_len, upper, shade * (0.55 + 0.45 * front)], 1)


def interior_pixels(pb: torch.Tensor, f: torch.Tensor, bu: torch.Tensor, gap: torch.Tensor,
                     c: MouthConsts) -> torch.Tensor:
    """The painted mouth interior at pixel heights pb [B, N], from the column features f
    [B, 10, N] (`interior_columns`) and the inner upper lip's height bu and the gap [B, N]
    -> RGB [B, 3, N].

    Back to front: the cavity (dark, lighter the wider the mouth opens, darker towards the
    corners and under the palate); the tongue resting behind the lower teeth, visible once the
    mouth is open; the lower teeth above the lower lip as the jaw drops; the upper teeth hanging
    from the upper lip, each tooth a slightly rounded surface with faint gaps between them where
    they are wide enough to draw, darker under the lip and towards the corners, translucent at
    the edge. Edges are as soft as the portrait (c.soft); light comes from the side c.tilt says.
    """
    u = c.u
    aa = 0.5 + 0.6 * c.soft  # edge half-width, px

    def edge(x):  # 0 -> 1 across an edge at x = 0 (px)
        return (x / (2 * aa) + 0.5).clamp(0, 1)

    cavity, t_top, tongue, t_lit, lo_top, lower, lo_shade, up_len, upper, up_shade = f.unbind(1)
    down = pb - bu
    depth = 0.55 + 0.45 * _smooth(down / gap.clamp(min=1.0))  # the palate's shadow at the top
    colour = c.cavity * (cavity * depth)[:, None]
    t_shade = (0.72 + 0.28 * torch.exp(-(pb - t_top).clamp(min=0) / (0.03 * u))) * t_lit
    colour = torch.lerp(colour, c.tongue * t_shade[:, None], (edge(pb - t_top) * tongue)[:, None])
    colour = torch.lerp(colour, c.teeth * lo_shade[:, None], (edge(pb - lo_top) * lower)[:, None])
    v = (down / up_len.clamp(min=1.0)).clamp(0, 1)  # down the upper teeth
    teeth = c.teeth * (up_shade * (0.85 + 0.15 * _smooth(v / 0.3)))[:, None]
    teeth = torch.lerp(teeth, colour, (0.15 * _smooth((v - 0.8) / 0.2))[:, None])  # translucent edge
    colour = torch.lerp(colour, teeth, (edge(up_len - down) * upper)[:, None])
    # The upper lip's shadow just below it.
    return colour * (1 - 0.3 * (1 - down / (0.02 * u)).clamp(0, 1))[:, None]
