"""The dense warp (steps 2-4, see the package docstring): barycentric weights of a coarse grid in
the rig's triangles (located by the Delaunay triangulation, or by `topology_weights` for the same
triangles at moved landmarks), the forward displacement field's Newton inversion, and the
upsampling of the coarse sampling map to full resolution. Pure geometry: no rig, no portrait.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay


def _cell_centres(width: int, height: int, step: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Centres of the coarse cells (every ``step`` px, (step-1)/2 from the origin): float64
    [G, 2] (x, y), row-major, and the grid shape (gh, gw)."""
    gw, gh = (width + step - 1) // step, (height + step - 1) // step
    gx, gy = np.meshgrid((np.arange(gw) * step + (step - 1) / 2), (np.arange(gh) * step + (step - 1) / 2))
    return np.stack([gx.ravel(), gy.ravel()], 1), (gh, gw)


def barycentric_weights(tri: Delaunay, width: int, height: int, step: int
                        ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Barycentric weights of a coarse grid (cell centres every ``step`` px) in the Delaunay
    triangulation ``tri`` of the control points: vertex indices int64 [G, 3], weights float32
    [G, 3] (zero outside the hull), and the grid shape (gh, gw)."""
    q, (gh, gw) = _cell_centres(width, height, step)
    simplex = tri.find_simplex(q)
    inside = simplex >= 0
    T = tri.transform[simplex[inside]]  # [n, 3, 2]
    bary2 = np.einsum("nij,nj->ni", T[:, :2], q[inside] - T[:, 2])
    idx = np.zeros((q.shape[0], 3), np.int64)
    w = np.zeros((q.shape[0], 3), np.float32)
    idx[inside] = tri.simplices[simplex[inside]]
    w[inside] = np.concatenate([bary2, 1 - bary2.sum(1, keepdims=True)], 1)
    return idx, w, (gh, gw)


def topology_weights(points: np.ndarray, simplices: np.ndarray, width: int, height: int, step: int
                     ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """`barycentric_weights` for a fixed topology: the triangles ``simplices`` int [T, 3] (a
    triangulation of the same control points elsewhere, e.g. in the first frame) with their
    vertices at ``points`` [L, 2] now. No triangulation: each triangle tests the cells inside its
    bounding box, vectorised over all triangles (~2 ms for a 512 px frame on a CPU, a third of
    a triangulation with its `find_simplex`). Cells in no triangle (outside the hull) get zero
    weights; where moved triangles overlap (a fold), a cell takes one of them."""
    gw, gh = (width + step - 1) // step, (height + step - 1) // step
    c = (step - 1) / 2
    tri = points[simplices]  # [T, 3, 2]
    rx, ry = tri[:, 2, 0], tri[:, 2, 1]
    (ax, ay), (bx, by) = (tri[:, 0] - tri[:, 2]).T, (tri[:, 1] - tri[:, 2]).T
    det = ax * by - bx * ay
    ok = np.abs(det) > 1e-9
    det = np.where(ok, det, 1.0)
    # (b0, b1) = inverse([a b]) @ (q - r): the weights of vertices 0 and 1; vertex 2 gets the rest.
    i00, i01, i10, i11 = by / det, -bx / det, -ay / det, ax / det
    lo = np.clip(np.ceil((tri.min(1) - c) / step), 0, None).astype(np.int64)  # [T, 2] first cell (x, y)
    hi = np.minimum(np.floor((tri.max(1) - c) / step).astype(np.int64), [gw - 1, gh - 1])
    span = np.clip(hi - lo + 1, 0, None)
    count = np.where(ok, span[:, 0] * span[:, 1], 0)
    t = np.repeat(np.arange(len(tri)), count)  # one row per (triangle, candidate cell in its box)
    k = np.arange(len(t)) - np.repeat(np.cumsum(count) - count, count)
    nx = span[t, 0]
    cx, cy = lo[t, 0] + k % nx, lo[t, 1] + k // nx
    dx, dy = cx * step + c - rx[t], cy * step + c - ry[t]
    b0 = i00[t] * dx + i01[t] * dy
    b1 = i10[t] * dx + i11[t] * dy
    b2 = 1 - b0 - b1
    inside = (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
    cell, t = (cy * gw + cx)[inside], t[inside]
    idx = np.zeros((gh * gw, 3), np.int64)
    w = np.zeros((gh * gw, 3), np.float32)
    idx[cell] = simplices[t]
    w[cell] = np.stack([b0[inside], b1[inside], b2[inside]], 1)
    return idx, w, (gh, gw)


def barycentric_matrix(idx: np.ndarray, w: np.ndarray, n_points: int) -> torch.Tensor:
    """Cell weights (``barycentric_weights``) as a sparse [G, n_points] matrix (the CPU
    renderer's sparse.mm)."""
    rows = np.repeat(np.arange(idx.shape[0]), 3)
    keep = w.ravel() != 0
    ind = torch.from_numpy(np.stack([rows[keep], idx.ravel()[keep]]))
    return torch.sparse_coo_tensor(ind, torch.from_numpy(w.ravel()[keep]), (idx.shape[0], n_points),
                                   check_invariants=False).coalesce()


def pixel_grid(x0: int, y0: int, x1: int, y1: int, device) -> torch.Tensor:
    """Image px coordinates of the pixels of a rectangle: float32 [y1-y0, x1-x0, 2] (x, y)."""
    ys = torch.arange(y0, y1, device=device, dtype=torch.float32)
    xs = torch.arange(x0, x1, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)


def upsample_map(s: torch.Tensor, coarse_xy: torch.Tensor, step: int, region_xy: torch.Tensor) -> torch.Tensor:
    """Coarse sampling map s [B, gh, gw, 2] -> full resolution [B, h, w, 2] (image px).

    The *offsets* s - x are upsampled (bilinear, half-pixel centres), not the coordinates: they
    are 0 on the pinned border, so the edge clamp of the interpolation is exact there. The coarse
    grid covers gw*step >= w pixels; the excess is cropped, never stretched."""
    B, gh, gw, _ = s.shape
    h, w = region_xy.shape[:2]
    off = (s - coarse_xy[None]).permute(0, 3, 1, 2)
    off = F.interpolate(off, size=(gh * step, gw * step), mode="bilinear", align_corners=False)
    return off[:, :, :h, :w].permute(0, 2, 3, 1) + region_xy[None]


def grid_step(device: torch.device, width: int, height: int) -> int:
    """Pitch (px) of the coarse grid the warp field is computed and inverted on: 4 px on the CPU
    (the Newton inversion dominates there: 2 px costs 4x), 2 px on CUDA where it is cheap; twice
    that for frames over 1024 px."""
    base = 2 if device.type == "cuda" else 4
    return base if max(width, height) <= 1024 else 2 * base


def coarse_grid(xy: torch.Tensor, origin: tuple[int, int], step: int, shape: tuple[int, int]) -> torch.Tensor:
    """Image pixel coordinates -> grid_sample's [-1, 1] on a coarse grid whose cell centres are
    at origin + step*i + (step-1)/2, of ``shape`` (gh, gw)."""
    gh, gw = shape
    # Per-channel Python scalars, not small tensors: no host-to-device copies (CUDA graphs).
    gx = (xy[..., 0] - (origin[0] + (step - 1) / 2)) * (2.0 / (step * max(gw - 1, 1))) - 1.0
    gy = (xy[..., 1] - (origin[1] + (step - 1) / 2)) * (2.0 / (step * max(gh - 1, 1))) - 1.0
    return torch.stack([gx, gy], -1)


def invert_warp(dense: torch.Tensor, coarse_xy: torch.Tensor, origin: tuple[int, int], step: int,
                iters: int = 4) -> torch.Tensor:
    """Solve s + d(s) = x for every coarse output cell x.

    dense: forward displacement [B, 2, gh, gw] (px) on the coarse grid; coarse_xy: [gh, gw, 2]
    image px of the cells. Returns s [B, gh, gw, 2] (image px to read from).

    Newton's method with the field's Jacobian J = I + grad d (finite differences on the coarse
    grid). A plain fixed-point iteration s <- x - d(s) only converges where |grad d| < 1, and
    opening a mouth or closing an eyelid stretches or squeezes the skin far more than that.
    Steps are capped at 6 px and det(J) kept >= 0.05 so a collapsing eyelid cannot blow up.
    """
    B, _, gh, gw = dense.shape
    st = float(step)
    dxx, dxy = torch.gradient(dense[:, 0], spacing=st, dim=(2, 1))  # d(dx)/dx, d(dx)/dy
    dyx, dyy = torch.gradient(dense[:, 1], spacing=st, dim=(2, 1))
    field = torch.cat([dense, torch.stack([dxx, dxy, dyx, dyy], 1)], 1)  # [B, 6, gh, gw]
    x = coarse_xy[None].expand(B, gh, gw, 2)
    s = x - dense.permute(0, 2, 3, 1)
    for _ in range(iters):
        f = F.grid_sample(field, coarse_grid(s, origin, step, (gh, gw)), mode="bilinear",
                          padding_mode="border", align_corners=True)
        r = s + f[:, 0:2].permute(0, 2, 3, 1) - x  # residual f(s) - x, [B, gh, gw, 2]
        a, b, c, d = 1 + f[:, 2], f[:, 3], f[:, 4], 1 + f[:, 5]
        det = a * d - b * c
        det = torch.where(det.abs() < 0.05, torch.full_like(det, 0.05), det)
        step_ = torch.stack([(d * r[..., 0] - b * r[..., 1]) / det, (-c * r[..., 0] + a * r[..., 1]) / det], -1)
        s = s - step_.clamp(-6.0, 6.0)
    return s


def interp_columns(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Batched linear interpolation (a contour's height over each pixel's column): x [B, N],
    xp/fp [B, K] (xp made non-decreasing; outside its range the end values) -> [B, N]."""
    xp = torch.cummax(xp, dim=1).values
    K = xp.shape[1]
    i = torch.searchsorted(xp.contiguous(), x.contiguous()).clamp(1, K - 1)
    x0, x1 = xp.gather(1, i - 1), xp.gather(1, i)
    f0, f1 = fp.gather(1, i - 1), fp.gather(1, i)
    t = ((x - x0) / (x1 - x0).clamp(min=1e-6)).clamp(0, 1)
    return f0 + t * (f1 - f0)
