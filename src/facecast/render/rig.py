"""The landmark rig: a portrait's rest geometry and the linear maps from motion parameters to
landmark motion (step 1 of the warp, see the package docstring).

Each motion parameter moves groups of face-mesh landmarks in a face-aligned frame measured in
inter-ocular distances (jaw drop moves lower lip, chin and jaw line; spread/round move the mouth
corners; blink brings each upper lid to its lower lid; head pose rotates the landmarks in 3D about
a neck pivot). Two rings of control points around the head follow the head partly, and points on
the border of the moving rectangle never move: the background and the picture's edges stay put.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.spatial import Delaunay

from .. import landmarks as lm
from ..types import MOTION_INDEX, Portrait
from .warp import barycentric_weights, topology_weights

# mediapipe face-mesh landmark groups used by the rig, as lists: numpy fancy indices that
# concatenate with ``+`` (facecast.landmarks holds them as tuples).
_LIP_IN_UP = list(lm.LIPS_INNER_UPPER)
_LIP_IN_LO = list(lm.LIPS_INNER_LOWER)
_LIP_OUT_UP = list(lm.LIPS_OUTER_UPPER)
_LIP_OUT_LO = list(lm.LIPS_OUTER_LOWER)
# The lids without their corners, in the order of the creases above them.
_EYE_R_UP = list(lm.RIGHT_EYE_UPPER[1:-1])
_EYE_R_LO = list(lm.RIGHT_EYE_LOWER[1:-1])
_EYE_L_UP = list(lm.LEFT_EYE_UPPER[-2:0:-1])
_EYE_L_LO = list(lm.LEFT_EYE_LOWER[-2:0:-1])
_EYE_R_CREASE = list(lm.RIGHT_EYE_CREASE)
_EYE_L_CREASE = list(lm.LEFT_EYE_CREASE)
_FACE_OVAL = list(lm.FACE_OVAL)
_CORNERS = list(lm.MOUTH_CORNERS)
_EYE_R_CORNERS = list(lm.RIGHT_EYE_CORNERS)
_EYE_L_CORNERS = list(lm.LEFT_EYE_CORNERS)
_FOREHEAD = lm.FACE_OVAL[0]  # 10, the top of the face outline


@dataclass(frozen=True)
class FaceFrame:
    """A face-aligned frame: the rig's and the painters' axes (a across the face, b down it)."""

    origin: np.ndarray  # [2] mouth centre, px
    ex: np.ndarray      # [2] unit vector along the eye line (image right)
    ey: np.ndarray      # [2] unit vector towards the chin
    iod: float          # inter-ocular distance, px


def face_frame(pts: np.ndarray) -> FaceFrame:
    eye_r = pts[_EYE_R_CORNERS, :2].mean(0)
    eye_l = pts[_EYE_L_CORNERS, :2].mean(0)
    ex = eye_l - eye_r
    iod = float(np.linalg.norm(ex))
    ex = ex / iod
    ey = np.array([-ex[1], ex[0]])
    if np.dot(ey, pts[lm.CHIN, :2] - pts[_FOREHEAD, :2]) < 0:  # make ey point towards the chin
        ey = -ey
    origin = pts[_LIP_IN_UP + _LIP_IN_LO, :2].mean(0)
    return FaceFrame(origin, ex, ey, iod)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _ring(pts: np.ndarray, center: np.ndarray, scale: float, n: int = 24) -> np.ndarray:
    """Points on the face oval scaled about ``center`` (resampled to n points)."""
    oval = pts[_FACE_OVAL, :2]
    idx = np.linspace(0, len(oval), n, endpoint=False).astype(int)
    return center + (oval[idx] - center) * scale


class MeshRig:
    """Rest geometry of one face in one picture and the linear maps from motion to landmark motion.

    points: float64 [L, 2] control points (468 mesh landmarks, 2 rings, border). The 10 iris
        landmarks are left out: they sit inside the eye opening, and pinning them would stop the
        eyelids from closing over the eye.
    simplices: int [T, 3] the mesh topology: triangles of control point indices. The first rig
        of a face triangulates its control points (Delaunay, kept as ``triangulation``); `rebase`
        gives the same face at other landmarks (a video frame's) with the same triangles, so a
        per-frame base costs no triangulation (issue #13: the FaceSource seam).
    """

    def __init__(self, points: np.ndarray, size: tuple[int, int], full_frame: bool = False,
                 simplices: np.ndarray | None = None):
        """points: float [>=468, 3] the face's landmarks (px, x y z) in a picture of ``size``
        (W, H). full_frame: pin the image border instead of a rectangle around the head, so every
        rig of one output size has the same moving region (the batched GPU renderer needs
        equal shapes; the CPU renderer prefers the smaller rectangle). simplices: a topology to
        reuse (see `rebase`); None triangulates."""
        pts = np.asarray(points)[:lm.N_MESH].astype(np.float64)
        W, H = size
        self.size = (W, H)
        self.full_frame = full_frame
        self.landmarks = pts  # float64 [468, 3], what this rig was built from
        self.ff = ff = face_frame(pts)
        u = ff.iod
        rel = pts[:, :2] - ff.origin
        a = rel @ ff.ex / u  # across the face, IOD units
        b = rel @ ff.ey / u  # down the face, IOD units (0 at the mouth)
        self.face_center = pts[_FACE_OVAL, :2].mean(0)
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
        self.n_face = lm.N_MESH
        self.n_ring = len(ring1)
        self.points = np.concatenate([pts[:, :2], ring1, ring2, border]).astype(np.float64)
        L = len(self.points)

        # --- per-landmark weights of each mouth/eye motion (in IOD units of displacement) ---
        chin_b = max(b[lm.CHIN], 0.4)
        # Jaw weight: the lower jaw (lower lip to chin) drops as one piece; the skin beside the
        # mouth stretches over a distance that grows towards the cheeks, so no neighbouring
        # landmarks cross (a fold). Lateral falloff towards the jaw hinges; the chin drops a
        # little less than the lower lip (the lip also rolls down).
        lateral = 1.0 - 0.65 * _smoothstep((np.abs(a) - 0.5) / 0.7)
        ramp = 0.05 + 0.35 * _smoothstep((np.abs(a) - 0.3) / 0.5)
        chin = 1.0 - 0.2 * np.clip((b - 0.2) / max(chin_b - 0.2, 0.1), 0, 1)
        lower = lateral * _smoothstep((b + 0.06) / ramp) * chin
        corner_a = max(np.abs(a[_CORNERS]).max(), 0.2)
        lower[_LIP_IN_LO[1:-1] + _LIP_OUT_LO[1:-1]] = 1.0
        lower[_LIP_IN_UP[1:-1] + _LIP_OUT_UP[1:-1]] = 0.0
        # Upper-lip region (above the inner lip, below the nose): tiny lift when the jaw drops.
        upper = np.where((b <= 0.05) & (b > -0.45) & (np.abs(a) < 0.6), 1.0 - np.abs(b) / 0.45, 0.0)
        upper = np.clip(upper, 0, 1) * np.clip(1 - np.abs(a) / 0.6, 0, 1)
        upper[_LIP_IN_UP] = 1.0
        upper[_LIP_OUT_UP] = np.maximum(upper[_LIP_OUT_UP], 0.85)
        upper[_CORNERS] = 0.4
        lower[_CORNERS] = np.clip(lower[_CORNERS], 0.3, 0.5)
        # Near the corners the upper lip follows their drop a little: a rounded opening, not a
        # box with straight sides. (A lower lip dropping less towards the corners rounded it
        # more, but the face mesh's lip shapes moved away from real speakers': LMD +0.003.)
        lip_up = _LIP_IN_UP[1:-1] + _LIP_OUT_UP[1:-1]
        lower[lip_up] = lower[_CORNERS[:2]].mean() * np.clip(np.abs(a[lip_up]) / corner_a, 0, 1) ** 4
        # Horizontal mouth-shape weight: lips fully, cheeks around the mouth a little.
        mouthw = np.exp(-((a / 0.75) ** 2 + (b / 0.45) ** 2) * 2.0)
        mouthw[_LIP_IN_UP + _LIP_IN_LO + _LIP_OUT_UP + _LIP_OUT_LO] = 1.0

        ex, ey = ff.ex, ff.ey
        # Basis displacements in pixels per unit parameter, [L, 2] each.
        def field(w_down=None, w_side=None):
            d = np.zeros((L, 2))
            if w_down is not None:
                d[:lm.N_MESH] += w_down[:, None] * ey[None, :] * u
            if w_side is not None:
                d[:lm.N_MESH] += w_side[:, None] * ex[None, :] * u
            r0 = lm.N_MESH
            d[r0:r0 + self.n_ring] = 0.6 * d[oval_idx]
            d[r0 + self.n_ring:r0 + 2 * self.n_ring] = 0.2 * d[oval_idx]
            return d

        sign_a = np.clip(a / corner_a, -1.2, 1.2)
        # Rings follow the face oval's mouth/jaw motion partly (ring1 60 %, ring2 20 %), so a
        # dropping chin stretches the neck instead of folding against a pinned point.
        oval_idx = np.array(_FACE_OVAL)[np.linspace(0, len(_FACE_OVAL), self.n_ring, endpoint=False).astype(int)]
        self._ring_src = oval_idx
        self.B_jaw = field(w_down=0.40 * lower - 0.04 * upper)
        self.B_spread = field(w_side=0.09 * sign_a * mouthw)
        # Rounding: corners in, lips pushed away from the mouth line (pursed), gap rounder.
        # Rounding: corners in, and the lips pushed apart vertically in the middle (protruded lips
        # frame a small round opening rather than a slit).
        pucker = np.zeros(lm.N_MESH)
        pucker[_LIP_IN_LO[1:-1]] = pucker[_LIP_OUT_LO[1:-1]] = 1.0
        pucker[_LIP_IN_UP[1:-1]] = pucker[_LIP_OUT_UP[1:-1]] = -0.6
        pucker *= np.clip(1 - np.abs(a) / corner_a, 0, 1) ** 0.5
        self.B_round = field(w_side=-0.16 * sign_a * mouthw, w_down=0.07 * pucker)
        self.B_pucker = field(w_down=0.07 * pucker)  # the part of rounding that parts the lips
        self.B_upper = field(w_down=-0.05 * upper)
        self.w_lower_lip = np.zeros(L)  # what closing the lips pulls back up: the jaw's own weights
        self.w_lower_lip[:lm.N_MESH] = lower
        # Eyelids: upper lid -> its lower lid, the lids meeting 85 % of the way down (the lower
        # lid rises a little too, as it does); the crease above follows part of the way, so the
        # lid's skin slides down with it. A warp can only squeeze the eye, which leaves a slit of
        # iris and stretches the portrait's lashes: lids.paint_lids draws the lid over them.
        self.B_blink = np.zeros((L, 2))
        for up, lo, crease in ((_EYE_R_UP, _EYE_R_LO, _EYE_R_CREASE), (_EYE_L_UP, _EYE_L_LO, _EYE_L_CREASE)):
            delta = pts[lo, :2] - pts[up, :2]
            self.B_blink[up] = 0.85 * delta
            self.B_blink[lo] = -0.15 * delta
            self.B_blink[crease] = 0.45 * delta
        # Expression: smile, brow raise, inner-brow raise (`expression_fields`).
        self.B_smile, self.B_brow, self.B_brow_inner = (
            self._rings(f) for f in expression_fields(pts[:, :2], a, b, u, ex, ey, corner_a))
        # Head pose weights: face 1, ring1 0.75, ring2 0.25, border 0.
        self.w_head = np.concatenate([np.ones(lm.N_MESH), np.full(self.n_ring, 0.75), np.full(self.n_ring, 0.25), np.zeros(len(border))])
        z = np.zeros(L)
        z[:lm.N_MESH] = pts[:, 2]
        self.z = z
        self.pivot = np.array([*(pts[lm.CHIN, :2] + ff.ey * 0.5 * u), float(np.median(pts[:, 2])) + 0.9 * u])
        self.rest_gap = float(np.median(np.linalg.norm(pts[_LIP_IN_LO, :2] - pts[_LIP_IN_UP, :2], axis=1)[2:-2]) / u)
        # Closing a mouth open at rest: each point of the lower lip rises by the gap above it
        # (0 at the corners), the lower face with it, by the gap of its own column (a) and its
        # jaw weight. (One gap for the whole lip, the median, lifted the corners by it too:
        # the lower lip crossed the upper one there.)
        gaps = np.maximum((pts[_LIP_IN_LO, :2] - pts[_LIP_IN_UP, :2]) @ ff.ey, 0.0)
        ga = (a[_LIP_IN_UP] + a[_LIP_IN_LO]) / 2
        order = np.argsort(ga)
        col_gap = np.interp(a, ga[order], gaps[order], left=0.0, right=0.0)
        self.close_field = np.zeros(L)  # px
        self.close_field[:lm.N_MESH] = lower * col_gap
        self.close_field[_LIP_IN_LO] = gaps

        self.tensors = RigTensors.of(self)
        # The topology: triangulated once per face, in coordinates relative to the moving
        # rectangle (the grid the warp's weights are computed on).
        self.triangulation = None if simplices is not None else Delaunay(self.points - list(self.region[:2]))
        self.simplices = simplices if simplices is not None else self.triangulation.simplices

    def _rings(self, d_face: np.ndarray) -> np.ndarray:
        """Face-point displacements [468, 2] px -> all control points [L, 2]: the rings follow
        the face oval partly (60 %, 20 %), the border stays."""
        d = np.zeros((len(self.points), 2))
        d[:lm.N_MESH] = d_face
        r0 = lm.N_MESH
        d[r0:r0 + self.n_ring] = 0.6 * d_face[self._ring_src]
        d[r0 + self.n_ring:r0 + 2 * self.n_ring] = 0.2 * d_face[self._ring_src]
        return d

    @classmethod
    def of(cls, portrait: Portrait, full_frame: bool = False) -> "MeshRig":
        """The rig of a portrait's face (it triangulates: a few ms on a CPU), with its inner lip
        contours moved onto the picture's own lip edges (`refine_inner_lips`)."""
        H, W = portrait.image.shape[:2]
        return cls(refine_inner_lips(portrait.image, portrait.face.points), (W, H), full_frame)

    def rebase(self, points: np.ndarray) -> "MeshRig":
        """The same face at other landmarks ``points`` [>=468, 3] px in a picture of this rig's
        size (a video frame): every motion map is recomputed from them (plain numpy, a few ms),
        the triangles are this rig's, not a new triangulation. Landmarks equal to this rig's give
        this rig back (its exact weights: a still portrait as a per-frame base renders bit for
        bit what the still renderer does)."""
        pts = np.asarray(points)[:lm.N_MESH].astype(np.float64)
        if np.array_equal(pts, self.landmarks):
            return self
        return MeshRig(pts, self.size, self.full_frame, simplices=self.simplices)

    def cell_weights(self, step: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Barycentric weights of the coarse grid over the moving rectangle (cell centres every
        ``step`` px from its origin) in this rig's triangles: vertex indices int64 [G, 3],
        weights float32 [G, 3], grid shape (gh, gw). The triangulating rig locates cells with
        its Delaunay triangulation; a rebased one places them in the moved triangles."""
        x0, y0, x1, y1 = self.region
        if self.triangulation is not None:
            return barycentric_weights(self.triangulation, x1 - x0, y1 - y0, step)
        return topology_weights(self.points - [x0, y0], self.simplices, x1 - x0, y1 - y0, step)

    def displacements(self, params: np.ndarray) -> np.ndarray:
        """params float32 [B, P] -> landmark displacements float32 [B, L, 2] in pixels."""
        return displace(self.tensors, torch.from_numpy(np.ascontiguousarray(params, np.float32))).numpy()


def expression_fields(xy: np.ndarray, a: np.ndarray, b: np.ndarray, u: float, ex: np.ndarray, ey: np.ndarray,
                      corner_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Displacements [468, 2] px per unit of smile, brow_raise and brow_inner, from the rest
    landmarks xy [468, 2] px, their face coordinates a/b [468] (IOD units, 0 at the mouth centre)
    and the mouth corners' |a| ``corner_a``.

    smile: the mouth corners up (0.055 IOD) and out (0.04), the skin around them with them
        (falling off over 0.2 IOD), the lips by how near the corners they are, the cheeks up
        (0.025) and the lower lids a little (0.012, the eyes' part of a real smile).
        Negative: the corners down and in (sad).
    brow_raise: both brows up 0.055 IOD and a little apart; the forehead above follows less
        the higher it is, the skin between brow and eye by how near the brow, the upper lids
        0.1 of it (eyes a little wider). Negative: down and together (a frown).
    brow_inner: the same field, weighted towards the inner ends of the brows (1 there, 0 at the
        outer ends): + raises them (sad, worried), - lowers them.
    """
    n = len(xy)
    side = np.sign(a)
    # Smile.
    corners = np.array([[a[c], b[c]] for c in _CORNERS[:2]])
    dc = np.min(np.hypot(a[:, None] - corners[None, :, 0], b[:, None] - corners[None, :, 1]), axis=1)
    w = np.exp(-(dc / 0.2) ** 2) * (b > -0.35)
    lips = _LIP_IN_UP + _LIP_IN_LO + _LIP_OUT_UP + _LIP_OUT_LO
    w[lips] = np.maximum(w[lips], np.clip(np.abs(a[lips]) / corner_a, 0, 1) ** 2)
    smile = (w * 0.04 * side)[:, None] * ex[None] * u - (w * 0.055)[:, None] * ey[None] * u
    cheek = np.exp(-(((np.abs(a) - 0.45) / 0.15) ** 2 + ((b + 0.3) / 0.15) ** 2))
    smile -= (0.025 * cheek)[:, None] * ey[None] * u
    smile[_EYE_R_LO + _EYE_L_LO] -= 0.012 * ey * u
    # Brows.
    raise_w, inner_w = np.zeros(n), np.zeros(n)
    for brow, up_lid in ((list(lm.RIGHT_BROW), _EYE_R_UP), (list(lm.LEFT_BROW), _EYE_L_UP)):
        s0 = np.sign(a[brow].mean())
        mine = np.sign(a) == s0
        bb, lb = b[brow].mean(), b[up_lid].mean()  # brow and upper-lid heights (IOD, negative = up)
        a_in, a_out = np.abs(a[brow]).min(), np.abs(a[brow]).max()
        reach = np.clip(1 - (np.abs(a) - a_out) / 0.25, 0, 1) * np.clip(1 - (a_in - np.abs(a)) / 0.25, 0, 1)
        above = 1 - 0.8 * np.clip((bb - b) / 0.4, 0, 1)
        between = 1 - 0.9 * np.clip((b - bb) / max(lb - bb, 0.05), 0, 1)
        wv = np.where(b < bb, above, np.where(b < lb, between, 0.0)) * reach * mine
        wv[up_lid] = 0.1
        wv[brow] = 1.0
        raise_w = np.maximum(raise_w, wv)
        inner = np.clip(1 - (np.abs(a) - a_in) / max(a_out - a_in, 0.05), 0, 1)
        inner_w = np.maximum(inner_w, wv * inner)
    brow = -(raise_w * 0.055)[:, None] * ey[None] * u + (raise_w * 0.012 * side)[:, None] * ex[None] * u
    brow_inner = -(inner_w * 0.05)[:, None] * ey[None] * u
    return smile, brow, brow_inner


def refine_inner_lips(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Landmarks [N, 3] with the inner contour of the lower lip of a mouth open at rest moved up
    onto the edge the picture shows (a copy; other landmarks, and a closed mouth's, unchanged).

    The face mesh places the inner lip contours of an open mouth only roughly: on the demo's
    astronaut (a small face, upscaled 2.5x) the lower one runs across the lower lip, 4-5 px below
    the teeth, so a closing mouth met on a band of teeth. Each inner lower point (not the
    corners) looks up along the face's vertical axis, up to 0.06 inter-ocular distances, for the
    steepest rise away from the lower lip's colour (measured between its contours) and moves
    there when the step is clear (> 40 RGB levels); the moves are median-filtered along the
    contour. The upper contour only rises out of dark shadow (below); teeth in the upper lip's
    shadow have the lip's colour, and the mesh finds that edge well."""
    pts = np.asarray(points, np.float32).copy()
    ff = face_frame(pts.astype(np.float64))
    u, ey = ff.iod, ff.ey
    up, lo = pts[_LIP_IN_UP, :2], pts[_LIP_IN_LO, :2]
    if np.median(((lo - up) @ ey)[2:-2]) < 0.015 * u:
        return pts
    H, W = image.shape[:2]
    img = image.astype(np.float32)

    def at(p: np.ndarray) -> np.ndarray:
        return img[np.clip(p[..., 1].round().astype(int), 0, H - 1), np.clip(p[..., 0].round().astype(int), 0, W - 1)]

    lip = np.median(at(0.65 * pts[_LIP_OUT_LO[2:-2], :2] + 0.35 * pts[_LIP_IN_LO[2:-2], :2]), axis=0)
    s = np.arange(0.03 * u, -0.06 * u - 0.25, -0.5)  # from inside the lower lip upwards
    gap = (lo - up) @ ey
    n = 4
    moves = np.zeros(len(_LIP_IN_LO))
    for k in range(1, len(_LIP_IN_LO) - 1):
        d = np.linalg.norm(at(lo[k][None] + s[:, None] * ey[None]) - lip, axis=1)
        c = np.concatenate([[0.0], np.cumsum(d)])
        j = np.arange(n, len(d) - n + 1)
        step = (c[j + n] - c[j]) / n - (c[j] - c[j - n]) / n
        if step.size and step.max() > 40.0:
            moves[k] = min(s[j[np.argmax(step)]], 0.0)
    moves[1:-1] = np.median(np.stack([moves[:-2], moves[1:-1], moves[2:]]), axis=0)
    moves = np.maximum(moves, -np.maximum(gap, 0.0))  # never above the upper contour
    pts[_LIP_IN_LO, :2] += moves[:, None].astype(np.float32) * ey[None].astype(np.float32)
    # The upper one only rises out of dark shadow (a smile's dark mouth corners, which the mesh
    # leaves inside the upper lip): up to the first pixel not darker than 55 % of the lip.
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    lip_up = float(np.median(at(0.65 * pts[_LIP_OUT_UP[2:-2], :2] + 0.35 * pts[_LIP_IN_UP[2:-2], :2]) @ luma))
    for k in range(1, len(_LIP_IN_UP) - 1):
        p0, p1 = pts[_LIP_IN_UP[k], :2], pts[_LIP_OUT_UP[k], :2]
        reach = 0.7 * max(float((p0 - p1) @ ey), 0.0)
        steps = np.arange(0.0, reach, 0.5)
        if steps.size == 0:
            continue
        dark = at(p0[None] - steps[:, None] * ey[None]) @ luma < 0.55 * lip_up
        if dark[0]:
            up_by = steps[np.argmin(dark)] if not dark.all() else reach
            pts[_LIP_IN_UP[k], :2] -= np.float32(up_by) * ey.astype(np.float32)
    # The mouth corners move out to the end of that shadow too (up to 0.1 IOD), so the lips'
    # outline holds the whole opening.
    for corner, side in ((_CORNERS[0], -1.0), (_CORNERS[1], 1.0)):
        steps = np.arange(0.0, 0.1 * u, 0.5)
        dark = at(pts[corner, :2][None] + side * steps[:, None] * ff.ex[None]) @ luma < 0.55 * lip_up
        if dark[0]:
            out_by = steps[np.argmin(dark)] if not dark.all() else steps[-1]
            pts[corner, :2] += np.float32(side * out_by) * ff.ex.astype(np.float32)
    return pts


@dataclass(frozen=True)
class RigTensors:
    """A rig's motion maps as tensors, leading dim 1 (one face) or N (gathered per frame from
    several faces by the batched renderer). L = number of control points.

    bases [.., P, L, 2]: px per unit of each motion parameter (jaw_open, lip_spread, lip_round,
        upper_lip, blink; zero rows for the others).
    w_lower [.., L], ey [.., 2], iod [..] px, close [.., L] px (how far each point rises to close
    a mouth open at rest), pucker [.., L, 2] px per unit of rounding (the part that parts the
    lips: closed lips stay closed when rounded), points [.., L, 2],
    z [.., L], pivot [.., 3], w_head [.., L].
    """

    bases: torch.Tensor
    w_lower: torch.Tensor
    ey: torch.Tensor
    iod: torch.Tensor
    close: torch.Tensor
    pucker: torch.Tensor
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
                        ("upper_lip", rig.B_upper), ("blink", rig.B_blink), ("smile", rig.B_smile),
                        ("brow_raise", rig.B_brow), ("brow_inner", rig.B_brow_inner)):
            bases[MOTION_INDEX[name]] = b
        return RigTensors(f(bases),
                          f(rig.w_lower_lip), f(rig.ff.ey), f([rig.ff.iod]).reshape(1), f(rig.close_field), f(rig.B_pucker),
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
    # Lip closure / labiodental tuck: undo the jaw's drop (pressed lips hold the jaw up), close
    # the rest gap of a portrait with parted lips, tuck the lower lip a little for f/v.
    u = rt.iod
    shut = torch.maximum(close, 0.85 * labio)
    d = d - (shut * jaw)[:, None, None] * rt.bases[:, I["jaw_open"]]
    pull = (0.02 * u * labio)[:, None] * rt.w_lower + shut[:, None] * rt.close
    d = d - pull[..., None] * rt.ey[:, None, :]
    # Pressed lips stay pressed: rounding and a raised upper lip do not part them.
    d = d - (close * params[:, I["lip_round"]])[:, None, None] * rt.pucker \
        - (close * params[:, I["upper_lip"]])[:, None, None] * rt.bases[:, I["upper_lip"]]
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

