"""The batched engine: many faces, one launch.

`BatchRenderer` holds the rigs of many portraits (one per live stream) of one output size on one
device and renders any mix of their frames in a single batched pass: frame n of the batch belongs
to face ``ids[n]``. Every per-face constant (motion bases, barycentric weights, mouth colours,
the portrait itself) is gathered per frame, so the GPU sees a few large kernels per tick no matter
how many streams are live. The math is the CPU renderer's (rig.displace, warp.invert_warp,
mouth.paint_mouth, lids.paint_lids); `tests/test_batch.py` checks the two agree on the CPU.

Nothing here synchronises with the host: parameters go up through a pinned buffer, frames come
back through a pinned buffer with a CUDA event the caller waits on (see `BatchRenderer.fetch`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F

from .. import landmarks as lm
from ..device import resolve_device
from ..types import MOTION_INDEX, Portrait, VideoFrames
from .mesh import batch_frames
from .lids import LidConsts, paint_lids
from .mouth import CONTOURS, MouthConsts, MouthPainter, paint_mouth
from .rig import MeshRig, RigTensors, displace
from .warp import grid_step, invert_warp, pixel_grid, upsample_map

_LIPS_OUTER = list(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER)

CAPTURE_LOCK = threading.Lock()
"""CUDA-graph captures in this process take turns (jobs render in threads of one process)."""


_IMAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def image_dtype(name: str) -> torch.dtype:
    """RenderOptions.dtype / LoadTestOptions.dtype -> the torch dtype of image sampling."""
    if name not in _IMAGE_DTYPES:
        raise ValueError(f"render dtype {name!r} is not one of {', '.join(_IMAGE_DTYPES)}")
    return _IMAGE_DTYPES[name]


def full_params(params: torch.Tensor) -> torch.Tensor:
    """Motion parameters [N, P'] with the later columns of MOTION_PARAMS left out (callers made
    before the expression columns: smile, brows) -> [N, P], the missing ones 0 (neutral)."""
    missing = len(MOTION_INDEX) - params.shape[1]
    return torch.nn.functional.pad(params, (0, missing)) if missing > 0 else params


@dataclass(frozen=True)
class _Face:
    rig: RigTensors
    idx: torch.Tensor     # [G, 3] vertex indices of each coarse cell
    w: torch.Tensor       # [G, 3] barycentric weights
    mouth: MouthConsts
    lids: LidConsts
    mouth_origin: torch.Tensor  # [2] px, top-left of this face's fixed mouth crop
    eye_origin: torch.Tensor    # [2 eyes, 2] px, top-left of its fixed eye crops (blinks)


class BatchRenderer:
    """Render frames of many faces (same output size) in one batched pass.

    add(portrait) -> face id; render(ids [N] long, params [N, P] float32) -> uint8 [N, H, W, 3]
    on the device. `dtype` is the precision of the image sampling and blending (float16 /
    bfloat16 on CUDA are safe for 8-bit output; geometry stays float32).
    """

    def __init__(self, size: tuple[int, int], device: str = "cuda", dtype: torch.dtype = torch.float32,
                 mouth_crop: tuple[int, int] | None = None, step: int | None = None):
        self.size = size  # (W, H)
        self.device = resolve_device(device)
        self.dtype = dtype if self.device.type == "cuda" else torch.float32
        W, H = size
        self.step = step or grid_step(self.device, W, H)  # explicit step: CPU references of GPU runs
        self.grid_shape: tuple[int, int] | None = None
        self._faces: list[_Face] = []
        self._images: list[torch.Tensor] = []
        self._stacked = None
        self.mouth_crop = mouth_crop  # (w, h) of the mouth painting window; set by the first face
        # (w, h) of each eye's blink window; set by the first face too (a later face with much
        # larger eyes than the first would have its blink painting cut at the window's edge).
        self.eye_crop: tuple[int, int] | None = None
        ys = torch.arange(0, H, self.step, device=self.device, dtype=torch.float32) + (self.step - 1) / 2
        xs = torch.arange(0, W, self.step, device=self.device, dtype=torch.float32) + (self.step - 1) / 2
        self.coarse_xy = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # [gh, gw, 2]
        self.full_xy = pixel_grid(0, 0, W, H, self.device)  # [H, W, 2]
        self._lip_idx = torch.tensor(CONTOURS, device=self.device)  # device-side: graph capturable
        self._real_interior = False  # any face shows teeth (or a gap) between its lips at rest
        self._zero2 = torch.zeros(1, 2, device=self.device)
        self._eye_idx = [(torch.tensor(up, device=self.device), torch.tensor(lo, device=self.device))
                         for up, lo in lm.EYES]
        self._scale = torch.tensor([2.0 / (W - 1), 2.0 / (H - 1)], device=self.device)  # px -> [-1, 1]

    def add(self, portrait: Portrait) -> int:
        """Register a face; returns its id. Costs a triangulation (~20 ms on a CPU)."""
        H, W = portrait.image.shape[:2]
        if (W, H) != self.size:
            raise ValueError(f"portrait is {W}x{H}, this BatchRenderer renders {self.size[0]}x{self.size[1]}")
        rig = MeshRig.of(portrait, full_frame=True)
        idx, w, shape = rig.cell_weights(self.step)
        self.grid_shape = shape
        painter = MouthPainter(portrait, rig, torch.device("cpu"))
        self._real_interior = self._real_interior or painter.real_interior
        pts = portrait.face.points
        u = rig.ff.iod
        lips = pts[_LIPS_OUTER, :2]
        if self.mouth_crop is None:  # room for the widest jaw drop and head motion
            self.mouth_crop = (int(np.ceil(np.ptp(lips[:, 0]) + 0.7 * u)) // 2 * 2 + 2,
                               int(np.ceil(np.ptp(lips[:, 1]) + 0.9 * u)) // 2 * 2 + 2)
        cw, ch = self.mouth_crop
        cx, cy = lips[:, 0].mean(), lips[:, 1].min() - 0.2 * u
        ox = int(np.clip(round(cx - cw / 2), 0, max(W - cw, 0)))
        oy = int(np.clip(round(cy), 0, max(H - ch, 0)))
        if self.eye_crop is None:  # an eye (~0.5 IOD wide) with room for head motion and blinks
            self.eye_crop = (int(np.ceil(0.8 * u)) // 2 * 2 + 2, int(np.ceil(0.7 * u)) // 2 * 2 + 2)
        ew, eh = self.eye_crop
        eye_origin = []
        for upper, lower in lm.EYES:
            e = pts[list(upper + lower), :2]
            eye_origin.append([np.clip(round(e[:, 0].mean() - ew / 2), 0, max(W - ew, 0)),
                               np.clip(round(e[:, 1].mean() - eh / 2), 0, max(H - eh, 0))])
        dev = self.device
        self._faces.append(_Face(rig.tensors.to(dev), torch.from_numpy(idx).to(dev), torch.from_numpy(w).to(dev),
                                 painter.consts.to(dev),
                                 LidConsts.of(portrait.image, rig, dev),
                                 torch.tensor([ox, oy], dtype=torch.float32, device=dev),
                                 torch.tensor(eye_origin, dtype=torch.float32, device=dev)))
        self._images.append(torch.from_numpy(portrait.image.copy()).to(dev))
        self._stacked = None
        return len(self._faces) - 1

    def _stack(self):
        if self._stacked is None:
            f = self._faces
            self._stacked = (RigTensors.stack([x.rig for x in f]), torch.stack([x.idx for x in f]),
                             torch.stack([x.w for x in f]), MouthConsts.stack([x.mouth for x in f]),
                             LidConsts.stack([x.lids for x in f]),
                             torch.stack([x.mouth_origin for x in f]), torch.stack([x.eye_origin for x in f]),
                             torch.stack(self._images).permute(0, 3, 1, 2).to(self.dtype))  # [S, 3, H, W]
        return self._stacked

    @torch.inference_mode()
    def render(self, ids: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """ids long [N] (face of each frame), params float32 [N, P] -> uint8 [N, H, W, 3]."""
        rigs, idx, w, mouth, lids, mouth_origin, eye_origin, images = self._stack()
        ids = ids.to(self.device, non_blocking=True)
        params = full_params(params).to(self.device, non_blocking=True)
        N = ids.shape[0]
        W, H = self.size
        gh, gw = self.grid_shape
        disp = displace(rigs.take(ids), params)  # [N, L, 2]
        # Dense forward field: each coarse cell mixes its triangle's 3 vertex displacements.
        cell_idx, cell_w = idx[ids], w[ids]  # [N, G, 3]
        gathered = torch.gather(disp, 1, cell_idx.reshape(N, -1, 1).expand(-1, -1, 2)).reshape(N, -1, 3, 2)
        dense = (gathered * cell_w[..., None]).sum(2).reshape(N, gh, gw, 2).permute(0, 3, 1, 2)
        s = invert_warp(dense, self.coarse_xy, (0, 0), self.step)  # [N, gh, gw, 2] px
        grid = upsample_map(s, self.coarse_xy, self.step, self.full_xy) * self._scale - 1.0
        src = images[ids]
        img = F.grid_sample(src, grid.to(self.dtype), mode="bilinear", padding_mode="border",
                            align_corners=True)  # [N, 3, H, W]
        img = self._paint(img, src, ids, params, disp, rigs, mouth, lids, mouth_origin, eye_origin)
        return img.add(0.5).clamp_(0, 255).to(torch.uint8)

    def render_i420(self, ids: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """As ``render``, converted to yuv420p on the device (``encode.to_i420``): uint8
        [N, H*3/2, W], half the bytes to copy to the host, and the encoders skip swscale."""
        from ..media import to_i420

        return to_i420(VideoFrames(self.render(ids, params), 1.0, 0)).data

    def _paint(self, img, src, ids, params, disp, rigs, mouth, lids, mouth_origin, eye_origin):
        """Mouth and blinks, each in a fixed window per face (per-face offsets, one gather and
        one scatter per window). img [N, 3, H, W] -> [N, H, W, 3] (channels last); src: each
        frame's portrait [N, 3, H, W] (the lips are read from it)."""
        N = img.shape[0]
        n = torch.arange(N, device=self.device)[:, None, None]
        out = img.permute(0, 2, 3, 1).clone()  # [N, H, W, 3]
        pts = rigs.take(ids).points + disp
        consts = mouth.take(ids)

        def window(origin: torch.Tensor, size: tuple[int, int]):
            cw, ch = size
            rows = origin[:, 1].long()[:, None] + torch.arange(ch, device=self.device)  # [N, ch]
            cols = origin[:, 0].long()[:, None] + torch.arange(cw, device=self.device)  # [N, cw]
            crop = out[n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [N, 3, ch, cw]
            return crop, rows, cols

        origin = mouth_origin[ids]  # [N, 2]
        crop, rows, cols = window(origin, self.mouth_crop)
        cw, ch = self.mouth_crop
        pix = pixel_grid(0, 0, cw, ch, self.device).reshape(1, -1, 2) + origin[:, None, :]
        painted = paint_mouth(crop.reshape(N, 3, -1), pix, pts[:, self._lip_idx], params[:, MOTION_INDEX["jaw_open"]],
                              params[:, MOTION_INDEX["upper_lip"]], src, self._zero2, consts, cw + ch + 3,
                              self._real_interior).reshape(N, 3, ch, cw)
        out[n, rows[:, :, None], cols[:, None, :]] = painted.permute(0, 2, 3, 1)
        blink = params[:, MOTION_INDEX["blink"]]
        lc = lids.take(ids)
        for e, (up_idx, lo_idx) in enumerate(self._eye_idx):
            origin = eye_origin[ids, e]
            crop, rows, cols = window(origin, self.eye_crop)
            painted = paint_lids(crop, origin, pts[:, up_idx], pts[:, lo_idx], blink, *lc.eye(e))
            out[n, rows[:, :, None], cols[:, None, :]] = painted.permute(0, 2, 3, 1)
        return out


class PinnedFetcher:
    """Device frames -> host without a synchronisation in the render loop: a non-blocking copy
    into a pinned buffer plus a CUDA event; `wait()` blocks only the consumer (encode thread).
    On the CPU it is a plain view."""

    def __init__(self, frames: torch.Tensor):
        if frames.device.type == "cuda":
            self.host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
            self.host.copy_(frames, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host, self.event = frames, None

    def wait(self) -> torch.Tensor:
        if self.event is not None:
            self.event.synchronize()
        return self.host


class GraphedBatchRenderer:
    """`BatchRenderer.render` replayed from CUDA graphs, one per batch-size bucket.

    A render is ~100 small kernels; launched from Python they cost ~10 ms of host time whatever
    the batch size, which caps a GPU serving many streams and holds the GIL the encoders need.
    A graph replays them in one call. Batches are padded up to the next bucket (face 0, rest
    pose); the padding rows are discarded. Falls back to eager rendering off CUDA.

    The returned tensor is a view of the bucket's static output: copy it (e.g. PinnedFetcher)
    before the next call with the same bucket.
    """

    def __init__(self, engine: BatchRenderer, buckets=(8, 16, 32, 64, 128, 256), i420: bool = False):
        """i420: capture ``render_i420`` (frames as yuv420p, for encoders) instead of ``render``."""
        self.engine = engine
        self.buckets = tuple(sorted(buckets))
        self._graphs: dict[int, tuple] = {}
        self._render_fn = engine.render_i420 if i420 else engine.render

    def render(self, ids: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        eng = self.engine
        n = int(ids.shape[0])
        if eng.device.type != "cuda" or n > self.buckets[-1]:
            return self._render_fn(ids, params)
        size = next(b for b in self.buckets if b >= n)
        if size not in self._graphs:
            self._graphs[size] = self._capture(size)
        graph, s_ids, s_params, s_out = self._graphs[size]
        s_ids.zero_()
        s_params.zero_()
        s_ids[:n].copy_(ids, non_blocking=True)
        s_params[:n, :params.shape[1]].copy_(params, non_blocking=True)
        graph.replay()
        return s_out[:n]

    def _capture(self, size: int):
        eng = self.engine
        s_ids = torch.zeros(size, dtype=torch.long, device=eng.device)
        s_params = torch.zeros(size, len(MOTION_INDEX), dtype=torch.float32, device=eng.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside the graph (allocations, lazy init)
                self._render_fn(s_ids, s_params)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # A batch renders several jobs in threads of one process. Captures take turns (one lock
        # for the process) on this capture's own stream: torch.cuda.graph's default capture
        # stream is one per process, and two threads capturing on it at once failed on the H100
        # ("operation not permitted when stream is capturing"). thread_local: another thread's
        # allocations or copies while this one captures are not this graph's business.
        with CAPTURE_LOCK, torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            s_out = self._render_fn(s_ids, s_params)
        return graph, s_ids, s_params, s_out


class GraphedRenderer:
    """One portrait's offline renderer on CUDA: the batched engine's math (`BatchRenderer` with
    this one face) replayed from a CUDA graph, ``batch`` frames per replay.

    Why: `MeshRenderer` launches ~100 kernels per batch from Python. On the H100 box
    that costs 0.010-0.013 s of host time per audio second, and the Python holds the GIL the
    segment encoders need. A graph replay is one call. The frames equal MeshRenderer's
    full-frame torch path (`tests/test_batch.py`). Off CUDA it runs the same math eagerly:
    the CPU reference of the graphs.

    render(MotionFrames [n, P]) -> VideoFrames uint8 [n, H, W, 3] on the device (a fresh tensor;
    the graph's output buffer is copied out before the next replay).
    """

    def __init__(self, portrait: Portrait, options=None, batch: int | None = None):
        from ..options import RenderOptions

        options = options or RenderOptions()
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        self.portrait = portrait
        self.engine = BatchRenderer((W, H), device=options.device, dtype=image_dtype(options.dtype))
        self.device = self.engine.device
        self.engine.add(portrait)
        self.batch = max(1, batch) if batch else batch_frames(options, self.device)
        self._graphed = GraphedBatchRenderer(self.engine, buckets=(self.batch,))

    @torch.inference_mode()
    def render(self, motion) -> VideoFrames:
        n = motion.num_frames
        W, H = self.size
        frames = torch.empty((n, H, W, 3), dtype=torch.uint8, device=self.device)
        for i in range(0, n, self.batch):
            params = torch.from_numpy(np.ascontiguousarray(motion.params[i:i + self.batch], dtype=np.float32))
            ids = torch.zeros(params.shape[0], dtype=torch.long)
            frames[i:i + params.shape[0]].copy_(self._graphed.render(ids, params))
        return VideoFrames(frames, motion.fps, motion.first_frame)
