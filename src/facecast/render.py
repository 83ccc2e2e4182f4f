"""MotionFrames + Portrait -> frames: a landmark-driven dense warp of the portrait.

How a frame is drawn (all batched over frames, torch, same code on CPU and CUDA):

1. Landmark displacements [B, L, 2]: each motion parameter moves groups of face-mesh landmarks in
   a face-aligned frame measured in inter-ocular distances (jaw drop moves lower lip, chin and
   jaw line; spread/round move the mouth corners; blink brings each upper lid to its lower lid;
   head pose rotates the landmarks in 3D about a neck pivot). Two rings of control points
   around the head follow the head partly, and points on the image border never move: the
   background and the picture's edges stay put.
2. Dense forward displacement on a half-resolution grid: a fixed sparse matrix of barycentric
   weights (Delaunay triangulation of the rest landmarks) times the landmark displacements.
3. Inversion: the warp needs, for each output pixel, where to read in the portrait. Two
   fixed-point steps  s <- x - d(s)  on the coarse grid invert the (small, smooth) forward field.
4. One bilinear `grid_sample` of the portrait at full resolution.
5. Painting (composite.py): the mouth interior where the lips part, and the slit of eye a
   squeezed warp leaves in a blink closed with the lash line.

The work per frame is two small sparse/coarse ops and one full-resolution sample, so a 2-core
CPU renders 512x512 frames faster than real time and a GPU renders thousands per second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay

from . import composite
from .device import resolve_device
from .options import RenderOptions
from .types import MOTION_INDEX, MotionFrames, Portrait, VideoFrames

log = logging.getLogger(__name__)

# mediapipe face-mesh landmark groups used by the rig (indices into the 478 points).
LIP_IN_UP = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIP_IN_LO = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIP_OUT_UP = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIP_OUT_LO = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
EYE_R_UP = [246, 161, 160, 159, 158, 157, 173]
EYE_R_LO = [7, 163, 144, 145, 153, 154, 155]
EYE_L_UP = [466, 388, 387, 386, 385, 384, 398]
EYE_L_LO = [249, 390, 373, 374, 380, 381, 382]
EYE_R_CREASE = [247, 30, 29, 27, 28, 56, 190]    # the ring above each upper lid, same order
EYE_L_CREASE = [467, 260, 259, 257, 258, 286, 414]
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
CORNERS = [61, 291, 78, 308]
N_MESH = 468  # mesh landmarks without the irises


class Renderer(Protocol):
    def render(self, motion: MotionFrames) -> VideoFrames:
        ...


@dataclass(frozen=True)
class _FaceFrame:
    origin: np.ndarray  # [2] mouth centre, px
    ex: np.ndarray      # [2] unit vector along the eye line (image right)
    ey: np.ndarray      # [2] unit vector towards the chin
    iod: float          # inter-ocular distance, px


def _face_frame(pts: np.ndarray) -> _FaceFrame:
    eye_r = pts[[33, 133], :2].mean(0)
    eye_l = pts[[263, 362], :2].mean(0)
    ex = eye_l - eye_r
    iod = float(np.linalg.norm(ex))
    ex = ex / iod
    ey = np.array([-ex[1], ex[0]])
    if np.dot(ey, pts[152, :2] - pts[10, :2]) < 0:  # make ey point towards the chin
        ey = -ey
    origin = pts[LIP_IN_UP + LIP_IN_LO, :2].mean(0)
    return _FaceFrame(origin, ex, ey, iod)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _ring(pts: np.ndarray, center: np.ndarray, scale: float, n: int = 24) -> np.ndarray:
    """Points on the face oval scaled about ``center`` (resampled to n points)."""
    oval = pts[FACE_OVAL, :2]
    idx = np.linspace(0, len(oval), n, endpoint=False).astype(int)
    return center + (oval[idx] - center) * scale


class MeshRig:
    """Rest geometry of one portrait and the linear maps from motion to landmark motion.

    points: float32 [L, 2] control points (468 mesh landmarks, 2 rings, border). The 10 iris
        landmarks are left out: they sit inside the eye opening, and pinning them would stop the
        eyelids from closing over the eye.
    """

    def __init__(self, portrait: Portrait, full_frame: bool = False):
        """full_frame: pin the image border instead of a rectangle around the head, so every
        rig of one output size has the same moving region (the batched GPU renderer needs
        equal shapes; the CPU renderer prefers the smaller rectangle)."""
        pts = portrait.face.points[:N_MESH].astype(np.float64)
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        self.ff = ff = _face_frame(pts)
        u = ff.iod
        rel = pts[:, :2] - ff.origin
        a = rel @ ff.ex / u  # across the face, IOD units
        b = rel @ ff.ey / u  # down the face, IOD units (0 at the mouth)
        self.face_center = pts[FACE_OVAL, :2].mean(0)
        ring1 = _ring(pts, self.face_center, 1.22)
        ring2 = _ring(pts, self.face_center, 1.5)
        # Everything moves inside a fixed rectangle around ring2 and nothing outside it: the
        # rectangle's edge points are pinned, so the background beyond it never wobbles and the
        # renderer only resamples the rectangle.
        x0, y0 = np.floor(np.maximum(ring2.min(0) - 0.1 * ff.iod, 0)).astype(int)
        x1, y1 = np.ceil(np.minimum(ring2.max(0) + 0.1 * ff.iod, [W, H])).astype(int)
        x0, y0 = x0 - x0 % 2, y0 - y0 % 2  # even origin and size keep the coarse grid aligned
        x1, y1 = min(x1 + (x1 - x0) % 2, W), min(y1 + (y1 - y0) % 2, H)
        if full_frame:
            x0, y0, x1, y1 = 0, 0, W, H
        self.region = (int(x0), int(y0), int(x1), int(y1))
        n_b = 12
        t = np.linspace(0, 1, n_b, endpoint=False)
        w, h = x1 - 1 - x0, y1 - 1 - y0
        border = np.concatenate([
            np.stack([x0 + t * w, np.full(n_b, y0)], 1), np.stack([np.full(n_b, x0 + w), y0 + t * h], 1),
            np.stack([x0 + (1 - t) * w, np.full(n_b, y0 + h)], 1), np.stack([np.full(n_b, x0), y0 + (1 - t) * h], 1)]).astype(np.float64)
        # Rings must stay strictly inside the pinned rectangle.
        ring1 = np.clip(ring1, [x0 + 1, y0 + 1], [x0 + w - 1, y0 + h - 1])
        ring2 = np.clip(ring2, [x0 + 1, y0 + 1], [x0 + w - 1, y0 + h - 1])
        self.n_face = N_MESH
        self.n_ring = len(ring1)
        self.points = np.concatenate([pts[:, :2], ring1, ring2, border]).astype(np.float64)
        L = len(self.points)

        # --- per-landmark weights of each mouth/eye motion (in IOD units of displacement) ---
        chin_b = max(b[152], 0.4)
        # Jaw weight: the lower jaw (lower lip to chin) drops as one piece; the skin beside the
        # mouth stretches over a distance that grows towards the cheeks, so no neighbouring
        # landmarks cross (a fold). Lateral falloff towards the jaw hinges; the chin drops a
        # little less than the lower lip (the lip also rolls down).
        lateral = 1.0 - 0.65 * _smoothstep((np.abs(a) - 0.5) / 0.7)
        ramp = 0.05 + 0.35 * _smoothstep((np.abs(a) - 0.3) / 0.5)
        chin = 1.0 - 0.2 * np.clip((b - 0.2) / max(chin_b - 0.2, 0.1), 0, 1)
        lower = lateral * _smoothstep((b + 0.06) / ramp) * chin
        lower[LIP_IN_LO] = 1.0
        lower[LIP_OUT_LO[1:-1]] = 1.0
        lower[LIP_IN_UP[1:-1] + LIP_OUT_UP[1:-1]] = 0.0
        # Upper-lip region (above the inner lip, below the nose): tiny lift when the jaw drops.
        upper = np.where((b <= 0.05) & (b > -0.45) & (np.abs(a) < 0.6), 1.0 - np.abs(b) / 0.45, 0.0)
        upper = np.clip(upper, 0, 1) * np.clip(1 - np.abs(a) / 0.6, 0, 1)
        upper[LIP_IN_UP] = 1.0
        upper[LIP_OUT_UP] = np.maximum(upper[LIP_OUT_UP], 0.85)
        upper[CORNERS] = 0.4
        lower[CORNERS] = np.clip(lower[CORNERS], 0.3, 0.5)
        # Horizontal mouth-shape weight: lips fully, cheeks around the mouth a little.
        mouthw = np.exp(-((a / 0.75) ** 2 + (b / 0.45) ** 2) * 2.0)
        mouthw[LIP_IN_UP + LIP_IN_LO + LIP_OUT_UP + LIP_OUT_LO] = 1.0
        corner_a = max(np.abs(a[CORNERS]).max(), 0.2)

        ex, ey = ff.ex, ff.ey
        # Basis displacements in pixels per unit parameter, [L, 2] each.
        def field(w_down=None, w_side=None):
            d = np.zeros((L, 2))
            if w_down is not None:
                d[:N_MESH] += w_down[:, None] * ey[None, :] * u
            if w_side is not None:
                d[:N_MESH] += w_side[:, None] * ex[None, :] * u
            r0 = N_MESH
            d[r0:r0 + self.n_ring] = 0.6 * d[oval_idx]
            d[r0 + self.n_ring:r0 + 2 * self.n_ring] = 0.2 * d[oval_idx]
            return d

        sign_a = np.clip(a / corner_a, -1.2, 1.2)
        # Rings follow the face oval's mouth/jaw motion partly (ring1 60 %, ring2 20 %), so a
        # dropping chin stretches the neck instead of folding against a pinned point.
        oval_idx = np.array(FACE_OVAL)[np.linspace(0, len(FACE_OVAL), self.n_ring, endpoint=False).astype(int)]
        self._ring_src = oval_idx
        self.B_jaw = field(w_down=0.40 * lower - 0.04 * upper)
        self.B_spread = field(w_side=0.09 * sign_a * mouthw)
        # Rounding: corners in, lips pushed away from the mouth line (pursed), gap rounder.
        # Rounding: corners in, and the lips pushed apart vertically in the middle (protruded lips
        # frame a small round opening rather than a slit).
        pucker = np.zeros(N_MESH)
        pucker[LIP_IN_LO[1:-1]] = pucker[LIP_OUT_LO[1:-1]] = 1.0
        pucker[LIP_IN_UP[1:-1]] = pucker[LIP_OUT_UP[1:-1]] = -0.6
        pucker *= np.clip(1 - np.abs(a) / corner_a, 0, 1) ** 0.5
        self.B_round = field(w_side=-0.16 * sign_a * mouthw, w_down=0.07 * pucker)
        self.B_upper = field(w_down=-0.05 * upper)
        self.w_lower_lip = np.zeros(L)
        self.w_lower_lip[:N_MESH] = lower
        self.w_lower_lip[LIP_IN_LO] = 1.0
        # Eyelids: upper lid -> its lower lid, skin above follows a little. The warp can only
        # squeeze the eye, which leaves a slit of iris: composite.LidPainter closes that slit.
        self.B_blink = np.zeros((L, 2))
        for up, lo, crease in ((EYE_R_UP, EYE_R_LO, EYE_R_CREASE), (EYE_L_UP, EYE_L_LO, EYE_L_CREASE)):
            delta = pts[lo, :2] - pts[up, :2]
            # Lids meet 85 % of the way down (the lower lid rises a little too, as it does).
            self.B_blink[up] = 0.85 * delta
            self.B_blink[lo] = -0.15 * delta
            # The lid crease above follows part of the way, so the lid reads as skin sliding
            # down, not as a stretched iris.
            self.B_blink[crease] = 0.45 * delta
        # Head pose weights: face 1, ring1 0.75, ring2 0.25, border 0.
        self.w_head = np.concatenate([np.ones(N_MESH), np.full(self.n_ring, 0.75), np.full(self.n_ring, 0.25), np.zeros(len(border))])
        z = np.zeros(L)
        z[:N_MESH] = pts[:, 2]
        self.z = z
        self.pivot = np.array([*(pts[152, :2] + ff.ey * 0.5 * u), float(np.median(pts[:, 2])) + 0.9 * u])
        self.rest_gap = float(np.median(np.linalg.norm(pts[LIP_IN_LO, :2] - pts[LIP_IN_UP, :2], axis=1)[2:-2]) / u)

        self.tensors = RigTensors.of(self)

    def displacements(self, params: np.ndarray) -> np.ndarray:
        """params float32 [B, P] -> landmark displacements float32 [B, L, 2] in pixels."""
        return displace(self.tensors, torch.from_numpy(np.ascontiguousarray(params, np.float32))).numpy()


@dataclass(frozen=True)
class RigTensors:
    """A rig's motion maps as tensors, leading dim 1 (one face) or N (gathered per frame from
    several faces by the batched renderer). L = number of control points.

    bases [.., P, L, 2]: px per unit of each motion parameter (jaw_open, lip_spread, lip_round,
        upper_lip, blink; zero rows for the others).
    w_lower [.., L], ey [.., 2], iod/rest_gap [..] (px / IOD units), points [.., L, 2],
    z [.., L], pivot [.., 3], w_head [.., L].
    """

    bases: torch.Tensor
    w_lower: torch.Tensor
    ey: torch.Tensor
    iod: torch.Tensor
    rest_gap: torch.Tensor
    points: torch.Tensor
    z: torch.Tensor
    pivot: torch.Tensor
    w_head: torch.Tensor

    @staticmethod
    def of(rig: "MeshRig") -> "RigTensors":
        f = lambda x: torch.as_tensor(np.asarray(x, np.float32))[None]  # noqa: E731
        # One basis row per motion parameter (zero for the non-linear ones), so applying them is
        # a plain broadcast-multiply-sum: no index tensors (CUDA-graph friendly).
        bases = np.zeros((len(MOTION_INDEX),) + rig.B_jaw.shape, np.float32)
        for name, b in (("jaw_open", rig.B_jaw), ("lip_spread", rig.B_spread), ("lip_round", rig.B_round),
                        ("upper_lip", rig.B_upper), ("blink", rig.B_blink)):
            bases[MOTION_INDEX[name]] = b
        return RigTensors(f(bases),
                          f(rig.w_lower_lip), f(rig.ff.ey), f([rig.ff.iod]).reshape(1), f([rig.rest_gap]).reshape(1),
                          f(rig.points), f(rig.z), f(rig.pivot), f(rig.w_head))

    def to(self, device) -> "RigTensors":
        return RigTensors(*(getattr(self, k.name).to(device) for k in fields(self)))

    def take(self, index: torch.Tensor) -> "RigTensors":
        return RigTensors(*(getattr(self, k.name)[index] for k in fields(self)))

    @staticmethod
    def stack(items: list["RigTensors"]) -> "RigTensors":
        return RigTensors(*(torch.cat([getattr(r, k.name) for r in items]) for k in fields(RigTensors)))


def displace(rt: RigTensors, params: torch.Tensor) -> torch.Tensor:
    """Landmark displacements [B, L, 2] px for params [B, P] (rig tensors with leading dim 1 or B).
    One implementation for the CPU renderer (numpy in, via torch) and the batched GPU one."""
    I = MOTION_INDEX
    jaw, close, labio = params[:, I["jaw_open"]], params[:, I["lip_close"]], params[:, I["labiodental"]]
    d = (params[:, :, None, None] * rt.bases).sum(1)
    # Lip closure / labiodental tuck: pull the lower lip back up by the share of the jaw drop
    # that would open the lips, plus the rest gap of a portrait with parted lips.
    u = rt.iod
    pull = torch.maximum(close, 0.85 * labio) * (0.40 * jaw * u + rt.rest_gap * u) + 0.02 * u * labio
    d = d - pull[:, None, None] * rt.w_lower[:, :, None] * rt.ey[:, None, :]
    # Head pose: rotate (rest + mouth motion) in 3D about the neck pivot, weighted per point.
    rot = rotations(params[:, I["head_yaw"]], params[:, I["head_pitch"]], params[:, I["head_roll"]])  # [B, 3, 3]
    xy = rt.points + d
    p3 = torch.cat([xy, rt.z.expand(xy.shape[0], -1)[..., None]], 2) - rt.pivot[:, None, :]
    q = torch.einsum("bij,blj->bli", rot, p3)
    return d + (q[..., :2] - p3[..., :2]) * rt.w_head[:, :, None]


def rotations(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """[B] angles (radians) -> [B, 3, 3] rotation matrices Rz(roll) @ Rx(pitch) @ Ry(yaw)."""
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    Ry = torch.stack([torch.stack([cy, z, sy], -1), torch.stack([z, o, z], -1), torch.stack([-sy, z, cy], -1)], -2)
    Rx = torch.stack([torch.stack([o, z, z], -1), torch.stack([z, cp, -sp], -1), torch.stack([z, sp, cp], -1)], -2)
    Rz = torch.stack([torch.stack([cr, -sr, z], -1), torch.stack([sr, cr, z], -1), torch.stack([z, z, o], -1)], -2)
    return Rz @ Rx @ Ry


def barycentric_weights(points: np.ndarray, width: int, height: int, step: int
                        ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Barycentric weights of a coarse grid (cell centres every ``step`` px) in the Delaunay
    triangulation of ``points`` [L, 2]: vertex indices int64 [G, 3], weights float32 [G, 3]
    (zero outside the hull), and the grid shape (gh, gw)."""
    gw, gh = (width + step - 1) // step, (height + step - 1) // step
    gx, gy = np.meshgrid((np.arange(gw) * step + (step - 1) / 2), (np.arange(gh) * step + (step - 1) / 2))
    q = np.stack([gx.ravel(), gy.ravel()], 1)
    tri = Delaunay(points)
    simplex = tri.find_simplex(q)
    inside = simplex >= 0
    T = tri.transform[simplex[inside]]  # [n, 3, 2]
    bary2 = np.einsum("nij,nj->ni", T[:, :2], q[inside] - T[:, 2])
    idx = np.zeros((q.shape[0], 3), np.int64)
    w = np.zeros((q.shape[0], 3), np.float32)
    idx[inside] = tri.simplices[simplex[inside]]
    w[inside] = np.concatenate([bary2, 1 - bary2.sum(1, keepdims=True)], 1)
    return idx, w, (gh, gw)


def barycentric_matrix(points: np.ndarray, width: int, height: int, step: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The same weights as a sparse [G, L] matrix (the CPU renderer's sparse.mm)."""
    idx, w, shape = barycentric_weights(points, width, height, step)
    rows = np.repeat(np.arange(idx.shape[0]), 3)
    keep = w.ravel() != 0
    ind = torch.from_numpy(np.stack([rows[keep], idx.ravel()[keep]]))
    mat = torch.sparse_coo_tensor(ind, torch.from_numpy(w.ravel()[keep]), (idx.shape[0], len(points)),
                                  check_invariants=False).coalesce()
    return mat, shape


class MeshRenderer:
    """The portrait warper (see the module docstring). One instance per portrait."""

    def __init__(self, portrait: Portrait, options: RenderOptions = RenderOptions(), full_frame: bool = False):
        self.options = options
        self.device = resolve_device(options.device)
        self.portrait = portrait
        self.rig = MeshRig(portrait, full_frame=full_frame)
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        x0, y0, x1, y1 = self.rig.region
        self.step = grid_step(self.device, W, H)
        # Barycentric weights over the coarse grid of the moving rectangle (grid coords relative
        # to the rectangle's origin).
        mat, (gh, gw) = barycentric_matrix(self.rig.points - [x0, y0], x1 - x0, y1 - y0, self.step)
        self.grid_shape = (gh, gw)
        self.bary = mat.to(self.device)
        self.image = torch.from_numpy(portrait.image.copy()).to(self.device)  # uint8 [H, W, 3]
        self.image_f = self.image.permute(2, 0, 1)[None].float()  # [1, 3, H, W] 0..255
        self.image_np = np.ascontiguousarray(portrait.image)
        # OpenCV's remap is the fast CPU path; torch's grid_sample is the reference and the GPU path.
        self.backend = options.backend if options.backend != "auto" else ("opencv" if self.device.type == "cpu" else "torch")
        ys = (torch.arange(gh, device=self.device) * self.step + (self.step - 1) / 2 + y0).float()
        xs = (torch.arange(gw, device=self.device) * self.step + (self.step - 1) / 2 + x0).float()
        self.coarse_xy = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # [gh, gw, 2] image px
        self.region_xy = pixel_grid(x0, y0, x1, y1, self.device)  # [h, w, 2] image px
        self.mouth = composite.MouthPainter(portrait, self.rig, self.device)
        self.lids = composite.LidPainter(self.rig, self.device)

    @torch.inference_mode()
    def render(self, motion: MotionFrames) -> VideoFrames:
        """MotionFrames [n, P] -> VideoFrames uint8 [n, H, W, 3] on the renderer's device."""
        outs = []
        bs = batch_frames(self.options, self.device)
        for i in range(0, motion.num_frames, bs):
            outs.append(self._render_batch(motion.params[i:i + bs]))
        frames = torch.cat(outs) if outs else torch.zeros((0, self.size[1], self.size[0], 3), dtype=torch.uint8)
        return VideoFrames(frames, motion.fps, motion.first_frame)

    def _render_batch(self, params: np.ndarray) -> torch.Tensor:
        B = params.shape[0]
        x0, y0, x1, y1 = self.rig.region
        gh, gw = self.grid_shape
        disp_np = self.rig.displacements(params)
        disp = torch.from_numpy(disp_np).to(self.device)  # [B, L, 2]
        # Dense forward displacement on the coarse grid: [G, L] @ [L, 2B] -> [G, 2B].
        dense = torch.sparse.mm(self.bary, disp.permute(1, 0, 2).reshape(disp.shape[1], 2 * B))
        dense = dense.reshape(gh, gw, B, 2).permute(2, 3, 0, 1)  # [B, 2, gh, gw]
        s = self._invert(dense)
        out = self._sample_opencv(s) if self.backend == "opencv" else self._sample_torch(s)
        if self.options.mouth_interior:
            out = self.mouth.paint_frames(out, params, disp_np, disp)
        return self.lids.paint_frames(out, params, disp_np)

    def _sample_torch(self, s: torch.Tensor) -> torch.Tensor:
        """Reference (and GPU) path. s: [B, gh, gw, 2] source pixel coords -> uint8 [B, H, W, 3]."""
        B = s.shape[0]
        x0, y0, x1, y1 = self.rig.region
        # Upsample the sampling map to full resolution and sample the portrait once.
        src = upsample_map(s, self.coarse_xy, self.step, self.region_xy)
        warped = F.grid_sample(self.image_f.expand(B, -1, -1, -1), self._norm(src), mode="bilinear",
                               padding_mode="border", align_corners=True)  # [B, 3, h, w]
        out = self.image[None].expand(B, -1, -1, -1).contiguous()
        out[:, y0:y1, x0:x1] = warped.permute(0, 2, 3, 1).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return out

    def _sample_opencv(self, s: torch.Tensor) -> torch.Tensor:
        """CPU fast path, equivalent to _sample_torch up to OpenCV's 1/32-pixel fixed-point
        interpolation: cv2.resize of the coarse offsets (half-pixel centres, like
        align_corners=False) and cv2.remap on uint8 (SIMD, ~5x faster than float grid_sample)."""
        import cv2

        B = s.shape[0]
        x0, y0, x1, y1 = self.rig.region
        gh, gw = self.grid_shape
        offsets = (s - self.coarse_xy[None]).numpy()
        base = self.region_xy.numpy()
        out = self.image[None].expand(B, -1, -1, -1).contiguous()
        out_np = out.numpy()
        for b in range(B):
            m = cv2.resize(offsets[b], (gw * self.step, gh * self.step), interpolation=cv2.INTER_LINEAR)
            m = m[: y1 - y0, : x1 - x0] + base
            out_np[b, y0:y1, x0:x1] = cv2.remap(self.image_np, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out

    def _invert(self, dense: torch.Tensor) -> torch.Tensor:
        return invert_warp(dense, self.coarse_xy, self.rig.region[:2], self.step)

    def _norm(self, xy: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates -> grid_sample's [-1, 1] (align_corners=True)."""
        W, H = self.size
        scale = torch.tensor([2.0 / (W - 1), 2.0 / (H - 1)], device=xy.device)
        return xy * scale - 1.0


def batch_frames(options: RenderOptions, device: torch.device) -> int:
    """Frames per launch: ``options.batch_frames``, or by default 25 on the CPU (memory) and
    100 on CUDA (each launch costs host time there; see RenderOptions)."""
    return max(1, options.batch_frames or (100 if device.type == "cuda" else 25))


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
