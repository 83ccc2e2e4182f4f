"""The per-portrait renderer: `MeshRenderer` warps one portrait (CPU: OpenCV's remap, CUDA: torch),
or per-frame base pictures of the same face (a video's frames: the seam dubbing needs), and the
`Renderer` protocol every renderer of MotionFrames implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..device import resolve_device
from ..options import RenderOptions
from ..types import MotionFrames, Portrait, VideoFrames
from .lids import LidPainter
from .mouth import MouthPainter
from .rig import MeshRig, refine_inner_lips
from .warp import barycentric_matrix, grid_step, invert_warp, pixel_grid, upsample_map


class Renderer(Protocol):
    def render(self, motion: MotionFrames) -> VideoFrames:
        ...


@dataclass(frozen=True)
class _Base:
    """What drawing over one base picture takes: built once for the still portrait, and per base
    picture for `MeshRenderer.render(motion, bases)` (from the rebased rig: no triangulation)."""

    rig: MeshRig
    image: torch.Tensor       # uint8 [H, W, 3] on the device
    image_f: torch.Tensor | None  # float [1, 3, H, W] 0..255 (the torch backend's source)
    image_np: np.ndarray | None   # uint8 [H, W, 3], contiguous (the OpenCV backend's source)
    bary: torch.Tensor        # sparse [G, L] barycentric weights of the coarse grid
    grid_shape: tuple[int, int]
    coarse_xy: torch.Tensor   # [gh, gw, 2] image px of the coarse cells
    region_xy: torch.Tensor   # [h, w, 2] image px of the moving rectangle
    mouth: MouthPainter
    lids: LidPainter


class MeshRenderer:
    """The portrait warper (see the package docstring). One instance per portrait (face)."""

    def __init__(self, portrait: Portrait, options: RenderOptions = RenderOptions(), full_frame: bool = False):
        self.options = options
        self.device = resolve_device(options.device)
        self.portrait = portrait
        self.rig = MeshRig.of(portrait, full_frame=full_frame)
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        self.step = grid_step(self.device, W, H)
        # OpenCV's remap is the fast CPU path; torch's grid_sample is the reference and the GPU path.
        self.backend = options.backend if options.backend != "auto" else ("opencv" if self.device.type == "cpu" else "torch")
        self._full_xy = pixel_grid(0, 0, W, H, self.device)  # [H, W, 2] image px
        self._still = self._base(portrait, self.rig)

    def _base(self, picture: Portrait, rig: MeshRig) -> _Base:
        x0, y0, x1, y1 = rig.region
        # Barycentric weights over the coarse grid of the moving rectangle (grid coords relative
        # to the rectangle's origin).
        idx, w, (gh, gw) = rig.cell_weights(self.step)
        image = torch.from_numpy(picture.image.copy()).to(self.device)
        torch_src = self.backend != "opencv"
        ys = (torch.arange(gh, device=self.device) * self.step + (self.step - 1) / 2 + y0).float()
        xs = (torch.arange(gw, device=self.device) * self.step + (self.step - 1) / 2 + x0).float()
        return _Base(rig, image, image.permute(2, 0, 1)[None].float() if torch_src else None,
                     None if torch_src else np.ascontiguousarray(picture.image),
                     barycentric_matrix(idx, w, len(rig.points)).to(self.device), (gh, gw),
                     torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1), self._full_xy[y0:y1, x0:x1],
                     MouthPainter(picture, rig, self.device), LidPainter(picture.image, rig, self.device))

    @torch.inference_mode()
    def render(self, motion: MotionFrames, bases: Sequence[Portrait] | None = None) -> VideoFrames:
        """MotionFrames [n, P] -> VideoFrames uint8 [n, H, W, 3] on the renderer's device.

        bases: what each frame is drawn over instead of the still portrait, one per frame (a
        video's frames with their tracked landmarks, at the portrait's size; the same face).
        The rig is moved to each base's landmarks with the portrait's mesh topology
        (`MeshRig.rebase`): no triangulation per frame, ~5 ms of setup per base at 512 px (CPU).
        Consecutive equal bases share one setup and one batch, so rendering over the portrait
        repeated gives the still path's frames bit for bit. (The blink painter's window spans
        the frames of a batch, so a frame over a base of its own, a batch of one, can differ
        from the same frame batched with others at a few pixels by the lids.)"""
        if bases is not None and len(bases) != motion.num_frames:
            raise ValueError(f"{len(bases)} base pictures for {motion.num_frames} frames")
        # One output tensor, each batch drawn into its rows (no concatenation copy at the end).
        frames = torch.empty((motion.num_frames, self.size[1], self.size[0], 3), dtype=torch.uint8, device=self.device)
        bs = batch_frames(self.options, self.device)
        i = 0
        while i < motion.num_frames:
            base, j = self._still, min(i + bs, motion.num_frames)
            if bases is not None:
                j = next((k for k in range(i + 1, j) if not _same(bases[k], bases[i])), j)
                base = self._still if _same(bases[i], self.portrait) else self._rebase(bases[i])
            self._render_batch(motion.params[i:j], base, frames[i:j])
            i = j
        return VideoFrames(frames, motion.fps, motion.first_frame)

    def _rebase(self, picture: Portrait) -> _Base:
        H, W = picture.image.shape[:2]
        if (W, H) != self.size:
            raise ValueError(f"base picture is {W}x{H}, this renderer renders {self.size[0]}x{self.size[1]}")
        return self._base(picture, self.rig.rebase(refine_inner_lips(picture.image, picture.face.points)))

    def _render_batch(self, params: np.ndarray, base: _Base, out: torch.Tensor) -> torch.Tensor:
        """Draw the frames of ``params`` [B, P] over ``base`` into ``out`` uint8 [B, H, W, 3]."""
        B = params.shape[0]
        gh, gw = base.grid_shape
        disp_np = base.rig.displacements(params)
        disp = torch.from_numpy(disp_np).to(self.device)  # [B, L, 2]
        # Dense forward displacement on the coarse grid: [G, L] @ [L, 2B] -> [G, 2B].
        dense = torch.sparse.mm(base.bary, disp.permute(1, 0, 2).reshape(disp.shape[1], 2 * B))
        dense = dense.reshape(gh, gw, B, 2).permute(2, 3, 0, 1)  # [B, 2, gh, gw]
        s = invert_warp(dense, base.coarse_xy, base.rig.region[:2], self.step)
        if self.backend == "opencv":
            self._sample_opencv(s, base, out)
        else:
            self._sample_torch(s, base, out)
        if self.options.mouth_interior:
            out = base.mouth.paint_frames(out, params, disp_np, disp)
        return base.lids.paint_frames(out, params, disp_np)

    def _sample_torch(self, s: torch.Tensor, base: _Base, out: torch.Tensor) -> None:
        """Reference (and GPU) path. s: [B, gh, gw, 2] source pixel coords -> out uint8 [B, H, W, 3]."""
        B = s.shape[0]
        x0, y0, x1, y1 = base.rig.region
        # Upsample the sampling map to full resolution and sample the portrait once.
        src = upsample_map(s, base.coarse_xy, self.step, base.region_xy)
        warped = F.grid_sample(base.image_f.expand(B, -1, -1, -1), self._norm(src), mode="bilinear",
                               padding_mode="border", align_corners=True)  # [B, 3, h, w]
        _still_outside(out, base.image, base.rig.region)
        out[:, y0:y1, x0:x1] = warped.permute(0, 2, 3, 1).add_(0.5).clamp_(0, 255).to(torch.uint8)

    def _sample_opencv(self, s: torch.Tensor, base: _Base, out: torch.Tensor) -> None:
        """CPU fast path, equivalent to _sample_torch up to OpenCV's 1/32-pixel fixed-point
        interpolation: cv2.resize of the coarse offsets (half-pixel centres, like
        align_corners=False) and cv2.remap on uint8 (SIMD, ~5x faster than float grid_sample)."""
        import cv2

        B = s.shape[0]
        x0, y0, x1, y1 = base.rig.region
        gh, gw = base.grid_shape
        offsets = (s - base.coarse_xy[None]).numpy()
        grid = base.region_xy.numpy()
        _still_outside(out, base.image, base.rig.region)
        out_np = out.numpy()
        for b in range(B):
            m = cv2.resize(offsets[b], (gw * self.step, gh * self.step), interpolation=cv2.INTER_LINEAR)
            m = m[: y1 - y0, : x1 - x0] + grid
            out_np[b, y0:y1, x0:x1] = cv2.remap(base.image_np, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _norm(self, xy: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates -> grid_sample's [-1, 1] (align_corners=True)."""
        W, H = self.size
        scale = torch.tensor([2.0 / (W - 1), 2.0 / (H - 1)], device=xy.device)
        return xy * scale - 1.0


def _still_outside(out: torch.Tensor, image: torch.Tensor, region: tuple[int, int, int, int]) -> None:
    """Copy the picture ``image`` [H, W, 3] into every frame of ``out`` [B, H, W, 3] outside the
    moving rectangle ``region`` (which the warp fills)."""
    x0, y0, x1, y1 = region
    out[:, :y0] = image[None, :y0]
    out[:, y1:] = image[None, y1:]
    out[:, y0:y1, :x0] = image[None, y0:y1, :x0]
    out[:, y0:y1, x1:] = image[None, y0:y1, x1:]


def _same(a: Portrait, b: Portrait) -> bool:
    """Equal base pictures (landmarks first: the cheap test)."""
    return a is b or (np.array_equal(a.face.points, b.face.points) and np.array_equal(a.image, b.image))


def batch_frames(options: RenderOptions, device: torch.device) -> int:
    """Frames per launch: ``options.batch_frames``, or by default 25 on the CPU (memory) and
    100 on CUDA (each launch costs host time there; see RenderOptions)."""
    return max(1, options.batch_frames or (100 if device.type == "cuda" else 25))

