"""Twin lower-face network: regenerate the lower face of a mouth crop from a mouth sketch and a
reference, plus the sketch it is conditioned on and the frame <-> crop geometry it runs in.

Public API
----------
- ``RenderConfig``: the network's shape (stored in the .twin file).
- ``RenderNet(config)``: U-Net, ``forward(masked [B,3,R,R], sketch [B,3,R,R], ref [B,3,R,R])``
  -> RGB [B,3,R,R] in [-1, 1]. Inputs are images in [-1, 1].
- ``draw_sketch(mouth [B,53,2] crop units, size) -> [B,3,size,size]``: the condition image,
  soft line fields of the outer lips (ch 0), jaw (ch 2) and the filled mouth opening (ch 1),
  computed with tensor ops on any device (no host round-trip, no cv2).
- ``lower_face_mask(size)`` / ``blend_mask(size)``: the fixed region the network regenerates and
  the feathered alpha used to paste it back.
- ``crop_frames`` / ``paste_crops``: warp frames [B,H,W,3] into mouth crops with per-frame
  affines and back (grid_sample), so a whole batch stays on the GPU.

Why a fixed mask in crop space: the crop follows the head (see prepare.py), so "below the nose,
inside the cheeks" is the same rectangle in every frame; the network sees the upper lip area,
cheeks and a strip under the chin as context and must match them at the seams.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facecast.twin.points import MOUTH_SLICES

__all__ = [
    "RenderConfig",
    "RenderNet",
    "blend_mask",
    "crop_frames",
    "draw_sketch",
    "lower_face_mask",
    "crop_theta",
    "paste_crops",
    "paste_theta",
    "scale_affine",
]

# Mask box in crop units (x0, y0, x1, y1): below the nostrils to just under the chin.
MASK_BOX = (0.08, 0.24, 0.92, 0.96)
_FEATHER = 0.035  # blend ramp width, crop units


@dataclass(frozen=True)
class RenderConfig:
    size: int = 336
    widths: tuple[int, ...] = (32, 64, 128, 192, 256)
    mid_blocks: int = 2

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "RenderConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


def _box(size: int, inset: float, device=None) -> Tensor:
    """[size, size] soft box: 1 inside MASK_BOX shrunk by ``inset``, ramping to 0 over _FEATHER."""
    x0, y0, x1, y1 = MASK_BOX
    c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size

    def ramp(lo: float, hi: float) -> Tensor:
        a = ((c - (lo + inset)) / _FEATHER).clamp(0, 1)
        b = (((hi - inset) - c) / _FEATHER).clamp(0, 1)
        return torch.minimum(a, b)

    return ramp(y0, y1)[:, None] * ramp(x0, x1)[None, :]


def lower_face_mask(size: int, device=None) -> Tensor:
    """[size, size] in {0, 1}: 1 where the network's input is blanked (the region it regenerates)."""
    return (_box(size, -_FEATHER, device) > 0).float()


def blend_mask(size: int, device=None) -> Tensor:
    """[size, size] alpha in [0, 1] for pasting the generated crop back: 1 well inside the
    regenerated box, ramping to 0 at its edge (so the seam falls on pixels the network saw)."""
    return _box(size, 0.0, device)


# ---------------------------------------------------------------------------------------------
# Sketch


def _chains(mouth: Tensor) -> dict[str, Tensor]:
    """Closed/open polylines as segment lists [B, S, 2, 2] per channel."""
    outer = mouth[:, MOUTH_SLICES["outer"]]  # 11 upper corner->corner, then 9 lower right->left
    inner = mouth[:, MOUTH_SLICES["inner"]]
    jaw = mouth[:, MOUTH_SLICES["jaw"]]

    def loop(p: Tensor) -> Tensor:
        # upper 0..10 corner to corner, lower 11..19 from the right corner's neighbour leftwards:
        # the closed polygon is upper, then the lower chain reversed back to the start corner.
        poly = torch.cat([p[:, :11], p[:, 11:].flip(1)], dim=1)
        return torch.stack([poly, poly.roll(-1, dims=1)], dim=2)

    def chain(p: Tensor) -> Tensor:
        return torch.stack([p[:, :-1], p[:, 1:]], dim=2)

    return {"outer": loop(outer), "inner": loop(inner), "jaw": chain(jaw)}


def _line_field(seg: Tensor, grid: Tensor, width: float) -> Tensor:
    """exp(-(d/width)^2) of the distance to the nearest segment. seg [B,S,2,2], grid [P,2] -> [B,P]."""
    a, b = seg[:, :, 0], seg[:, :, 1]  # [B,S,2]
    ab = b - a
    ap = grid[None, :, None, :] - a[:, None]  # [B,P,S,2]
    t = ((ap * ab[:, None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[:, None]).clamp(0, 1)
    d2 = ((ap - t[..., None] * ab[:, None]) ** 2).sum(-1).amin(-1)  # [B,P]
    return torch.exp(-d2 / (width * width))


def _inside(seg: Tensor, grid: Tensor) -> Tensor:
    """Even-odd rule: is each grid point inside the closed polygon? seg [B,S,2,2] -> [B,P] float."""
    a, b = seg[:, None, :, 0], seg[:, None, :, 1]  # [B,1,S,2]
    px, py = grid[None, :, None, 0], grid[None, :, None, 1]
    crosses = (a[..., 1] > py) != (b[..., 1] > py)
    dy = b[..., 1] - a[..., 1]
    dy = torch.where(dy.abs() < 1e-12, torch.full_like(dy, 1e-12), dy)
    x_at = a[..., 0] + (py - a[..., 1]) * (b[..., 0] - a[..., 0]) / dy
    hits = (crosses & (px < x_at)).sum(-1)
    return (hits % 2).float()


def draw_sketch(mouth: Tensor, size: int, *, work: int | None = None) -> Tensor:
    """Condition image of mouth landmarks.

    mouth: [B, 53, 2] MOUTH_POINTS in crop units (0..1). Returns float [B, 3, size, size] in
    [-1, 1]: ch 0 outer lip contour, ch 1 filled inner-mouth opening (with its contour), ch 2
    jaw line. Drawn at ``work`` px (default size/2) and upsampled bilinearly: the lines are soft
    (sigma ~1.5 % of the crop) so nothing is lost, and the cost is a quarter.
    """
    work = work or max(16, size // 2)
    mouth = mouth.float()
    c = (torch.arange(work, device=mouth.device, dtype=torch.float32) + 0.5) / work
    grid = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # [P,(x,y)]
    segs = _chains(mouth)
    w = max(0.012, 1.0 / work)  # at least a pixel of the drawing grid, or thin lines alias away
    out = []
    # Batches in slices bound the [B, P, S] temporaries (~work^2 * 20 floats per frame).
    for i in range(0, mouth.shape[0], 16):
        s = {k: v[i : i + 16] for k, v in segs.items()}
        outer = _line_field(s["outer"], grid, w)
        inner = torch.maximum(_line_field(s["inner"], grid, w), _inside(s["inner"], grid))
        jaw = _line_field(s["jaw"], grid, w)
        out.append(torch.stack([outer, inner, jaw], 1).reshape(-1, 3, work, work))
    img = torch.cat(out)
    if work != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    return img * 2 - 1


# ---------------------------------------------------------------------------------------------
# Network


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(8, cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n2 = nn.GroupNorm(8, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class RenderNet(nn.Module):
    """U-Net over [masked frame | mask | sketch | reference] (10 channels) -> RGB.

    Levels at R, R/2, ... R/2^(L-1) with ``widths`` channels, one residual block per level on
    each side, skip connections by concatenation, ``mid_blocks`` blocks at the bottom.
    """

    def __init__(self, config: RenderConfig = RenderConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = nn.Conv2d(10, w[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i in range(len(w)):
            self.down.append(_Res(w[i], w[i]))
            if i + 1 < len(w):
                self.pool.append(nn.Conv2d(w[i], w[i + 1], 3, stride=2, padding=1))
        self.mid = nn.Sequential(*[_Res(w[-1], w[-1]) for _ in range(config.mid_blocks)])
        self.up = nn.ModuleList()
        self.lift = nn.ModuleList()
        for i in reversed(range(len(w) - 1)):
            self.lift.append(nn.Conv2d(w[i + 1], w[i], 3, padding=1))
            self.up.append(_Res(2 * w[i], w[i]))
        self.head = nn.Sequential(nn.GroupNorm(8, w[0]), nn.SiLU(), nn.Conv2d(w[0], 3, 3, padding=1))
        self.register_buffer("mask", lower_face_mask(config.size), persistent=False)

    def forward(self, frame: Tensor, sketch: Tensor, ref: Tensor) -> Tensor:
        """frame: [B,3,R,R] the target crop (its lower face is blanked here, whatever it holds);
        sketch, ref: [B,3,R,R]; all in [-1, 1]. Returns [B,3,R,R]."""
        m = self.mask.to(frame.dtype)[None, None]
        x = torch.cat([frame * (1 - m), m.expand(frame.shape[0], 1, -1, -1), sketch, ref], 1)
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)
        h = self.mid(h)
        for lift, block in zip(self.lift, self.up):
            h = lift(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = block(torch.cat([h, skips.pop()], 1))
        return self.head(h)


# ---------------------------------------------------------------------------------------------
# Frames <-> crops on any device


def _full(affine: Tensor) -> Tensor:
    a = affine.double()
    full = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype, device=a.device)
    full[:, :2] = a
    full[:, 2, 2] = 1
    return full


def _inverse_affine(full: Tensor) -> Tensor:
    """Inverse of [B,3,3] affine matrices in closed form (torch.linalg.inv checks for singular
    input, which reads a flag back from the GPU and stalls the launch queue)."""
    a, b, c = full[:, 0, 0], full[:, 0, 1], full[:, 0, 2]
    d, e, f = full[:, 1, 0], full[:, 1, 1], full[:, 1, 2]
    det = a * e - b * d
    inv = torch.zeros_like(full)
    inv[:, 0, 0], inv[:, 0, 1] = e / det, -b / det
    inv[:, 1, 0], inv[:, 1, 1] = -d / det, a / det
    inv[:, 0, 2] = -(inv[:, 0, 0] * c + inv[:, 0, 1] * f)
    inv[:, 1, 2] = -(inv[:, 1, 0] * c + inv[:, 1, 1] * f)
    inv[:, 2, 2] = 1
    return inv


def crop_theta(affine: Tensor, src_hw: tuple[int, int], size: int) -> Tensor:
    """affine_grid theta [B,2,3] sampling the crop from the frame: maps crop normalised coords
    (-1..1) to frame normalised coords. affine: [B,2,3] frame px -> crop px (pixel centres at
    integer coords, as cv2.warpAffine). Depends only on the frame, so callers with a fixed set
    of frames (a twin's background) compute it once."""
    h, w = src_hw
    full = _full(affine)
    inv = _inverse_affine(full)  # crop px -> frame px
    kw = {"dtype": full.dtype, "device": full.device}
    # crop normalised u -> crop px: x = (u + 1) * size / 2 - 0.5
    n2p = torch.tensor([[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1]], **kw)
    # frame px -> frame normalised: u = (x + 0.5) * 2 / w - 1
    p2n = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]], **kw)
    return (p2n @ inv @ n2p)[:, :2].float()


def paste_theta(affine: Tensor, frame_hw: tuple[int, int], size: int) -> Tensor:
    """affine_grid theta [B,2,3] mapping frame normalised coords to crop normalised coords
    (the inverse chain of ``crop_theta``)."""
    h, w = frame_hw
    full = _full(affine)
    kw = {"dtype": full.dtype, "device": full.device}
    n2p = torch.tensor([[w / 2, 0, w / 2 - 0.5], [0, h / 2, h / 2 - 0.5], [0, 0, 1]], **kw)
    p2n = torch.tensor([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]], **kw)
    return (p2n @ full @ n2p)[:, :2].float()


def crop_frames(frames: Tensor, affine: Tensor | None, size: int, *, theta: Tensor | None = None) -> Tensor:
    """Mouth crops of frames. frames: [B,3,H,W] float; affine: [B,2,3] frame px -> crop px (or
    a precomputed ``crop_theta``). Returns [B,3,size,size] (bilinear, borders reflected) — the
    tensor twin of cv2.warpAffine."""
    if theta is None:
        theta = crop_theta(affine, frames.shape[-2:], size)
    grid = F.affine_grid(theta.to(frames.dtype), [frames.shape[0], 3, size, size], align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def scale_affine(affine: Tensor, k: float | tuple[float, float]) -> Tensor:
    """Affines [B,2,3] (frame px -> crop px) for the same frames resized by factor k, or by
    (kx, ky) when the two sides scale differently (even-size rounding of a non-square frame);
    pixel centres: x_src = (x_new + 0.5) / kx - 0.5, likewise y."""
    kx, ky = (k, k) if isinstance(k, (int, float)) else k
    inv = torch.tensor([1.0 / kx, 1.0 / ky], dtype=affine.dtype, device=affine.device)
    off = torch.tensor([0.5 / kx - 0.5, 0.5 / ky - 0.5], dtype=affine.dtype, device=affine.device)
    out = affine.clone()
    out[..., :2] = affine[..., :2] * inv  # column j scales with axis j
    out[..., 2] = affine[..., 2] + (affine[..., :2] * off).sum(-1)
    return out


def paste_crops(frames: Tensor, crops: Tensor, affine: Tensor | None, *, theta: Tensor | None = None,
                alpha: Tensor | None = None) -> Tensor:
    """Blend generated crops back into frames. frames: [B,3,H,W]; crops: [B,3,R,R]; affine
    [B,2,3] frame px -> crop px (or a precomputed ``paste_theta``). Alpha is ``blend_mask``
    (or the one given, [R,R]) warped with the crop, so pixels outside the regenerated box keep
    their original values exactly."""
    b, _, h, w = frames.shape
    r = crops.shape[-1]
    if theta is None:
        theta = paste_theta(affine, (h, w), r)
    grid = F.affine_grid(theta.to(frames.dtype), [b, 4, h, w], align_corners=False)
    if alpha is None:
        alpha = blend_mask(r, crops.device)
    alpha = alpha.to(crops.dtype)[None, None].expand(b, 1, r, r)
    back = F.grid_sample(torch.cat([crops, alpha], 1), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
    a_ = back[:, 3:4]
    return frames * (1 - a_) + back[:, :3] * a_
