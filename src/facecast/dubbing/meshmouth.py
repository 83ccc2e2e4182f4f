"""The mesh mouth drawer (``DubOptions.mouth = "mesh"``, and where the footage holds too few
mouths): the portrait renderer's landmark warp over each frame, the mouth interior painted,
driven by the difference between the target mouth and the frame's own."""

from __future__ import annotations

import functools
import math

import numpy as np

from .calibrate import RIG_JAW_IOD, RIG_ROUND_IOD, RIG_SPREAD_IOD, SpeakerStats, mouth_shape
from .footage import FootageFrame
from .mask import composite, iod, lower_face_mask
from .options import DubOptions
from ..types import MOTION_INDEX, FaceLandmarks, MotionFrames, Portrait

__all__ = ["MeshMouth"]


class MeshMouth:
    """The mesh path: the portrait renderer's warp over each frame, driven by the difference
    between the target mouth and the frame's own (so a frame with an open mouth can close)."""

    def __init__(self, options: DubOptions, size: tuple[int, int], fps: float, stats: SpeakerStats):
        self.options, self.size, self.fps, self.stats = options, size, fps, stats
        self.renderer = None

    def deltas(self, points: np.ndarray, targets: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Motion params [n, P] that take each frame's mouth (points [n, 478, 3]) to its target
        (gap, width) [n, 2] in the rig's geometry; no blink, no head motion (the footage's own)."""
        closed = self.stats.summary()[0]
        now = mouth_shape(points)
        I = MOTION_INDEX
        p = np.zeros_like(params)
        rnd = params[:, I["lip_round"]]
        p[:, I["jaw_open"]] = np.clip((targets[:, 0] - closed - (now[:, 0] - closed)) / RIG_JAW_IOD, -1.0, 1.2)
        p[:, I["lip_spread"]] = np.clip((targets[:, 1] - now[:, 1] + RIG_ROUND_IOD * rnd) / RIG_SPREAD_IOD, -1.5, 1.5)
        p[:, I["lip_round"]] = rnd
        p[:, I["labiodental"]] = params[:, I["labiodental"]]
        p[:, I["upper_lip"]] = params[:, I["upper_lip"]]
        return p

    def draw(self, frames: list[FootageFrame], targets: np.ndarray, params: np.ndarray,
             outs: list[np.ndarray]) -> None:
        """Draw each frame's mouth into ``outs`` (copies of the frames' pictures). Returns None
        (the warp's own mouth shape is not known until measured)."""
        jobs, _ = self.prepare(frames, targets, params)
        for job, out in zip(jobs, outs):
            job(out)

    def prepare(self, frames: list[FootageFrame], targets: np.ndarray, params: np.ndarray) -> tuple[list, None]:
        """The renderer's warp of all frames here (one batch); per frame, a job ``job(out)`` that
        composites it through the mask into ``out`` (a copy of the frame's picture)."""
        from ..render import MeshRenderer

        W, H = self.size
        pts = np.stack([f.points for f in frames])
        p = self.deltas(pts, targets, params)
        bases = [Portrait(np.ascontiguousarray(f.image), FaceLandmarks(f.points, (W, H))) for f in frames]
        if self.renderer is None:
            self.renderer = MeshRenderer(bases[0], self.options.render)
        rendered = self.renderer.render(MotionFrames(p, self.fps, 0), bases=bases).frames.cpu().numpy()
        jobs = [functools.partial(self._composite, f, rendered[k], float(p[k, MOTION_INDEX["jaw_open"]]))
                for k, f in enumerate(frames)]
        return jobs, None

    def _composite(self, f: FootageFrame, rendered: np.ndarray, jaw: float, out: np.ndarray) -> None:
        u = iod(f.points)
        drop = max(jaw, 0.0) * RIG_JAW_IOD * u
        mask = lower_face_mask([f.points, f.points[:, :2] + _down(f.points) * drop], self.size, u,
                               self.options.mask_grow, self.options.feather)
        composite(f.image, rendered, mask, out=out)


def _down(points: np.ndarray) -> np.ndarray:
    """Unit vector [2] down the face (perpendicular to the eye line, towards the chin)."""
    from ..landmarks import CHIN, LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

    ex = points[list(LEFT_EYE_CORNERS), :2].mean(0) - points[list(RIGHT_EYE_CORNERS), :2].mean(0)
    ex = ex / max(math.hypot(*ex), 1e-6)
    ey = np.array([-ex[1], ex[0]])
    return ey if np.dot(ey, points[CHIN, :2] - points[10, :2]) >= 0 else -ey
