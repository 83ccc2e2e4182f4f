"""The rows of `facecast eval`: each a ``Generator`` (name -> frames for a clip).

Every clip is scored for several rows:

real      the clip itself: the ceiling (sync and quality a real face has).
still     the portrait frame repeated for the whole clip: the floor (no motion at all).
loudness  facecast with ``MotionOptions(drive="loudness")``: the jaw follows loudness alone.
facecast  facecast as shipped (default MotionOptions); in mode "twin" a trained twin instead.

A metric only counts as evidence when it separates the ceiling from the floor, and the table says
for each metric whether facecast is distinguishable from the floor and from the loudness baseline
(report.verdicts).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..options import MotionOptions, RenderOptions, SayOptions
from .clips import Clip
from .options import EvalOptions

__all__ = ["Generator", "RealRow", "StillRow", "FacecastRow", "TwinRow", "GENERATORS"]


class Generator(Protocol):
    """One row of the table: frames for a clip, on the clip's frame grid and pixel space."""

    name: str
    description: str

    def generate(self, clip: Clip) -> np.ndarray:
        """uint8 [M, H, W, 3] RGB frames (M should be clip.num_frames; differences are scored)."""
        ...


class RealRow:
    name, description = "real", "the real clip (ceiling)"

    def generate(self, clip: Clip) -> np.ndarray:
        return clip.frames


class StillRow:
    name, description = "still", "the portrait frame repeated (floor)"

    def generate(self, clip: Clip) -> np.ndarray:
        img = clip.portrait.image
        return np.broadcast_to(img, (clip.num_frames,) + img.shape)


class FacecastRow:
    """facecast's say_chunks on the clip's portrait and sound track."""

    def __init__(self, name: str, description: str, motion: MotionOptions, device: str = "cpu"):
        self.name, self.description = name, description
        self.motion, self.device = motion, device
        self.timings: dict[str, float] = {}

    def generate(self, clip: Clip) -> np.ndarray:
        from ..pipeline import say_chunks
        from ..timing import Timings

        opts = SayOptions(size=None, fps=clip.fps, motion=self.motion, render=RenderOptions(device=self.device))
        timings = Timings()
        out: list[np.ndarray] = []
        n = 0
        # The whole sound track from its start (the motion sees the same context as in a plain
        # `say`), keeping the frames of the evaluated span [first_frame, first_frame + N).
        need = clip.first_frame + clip.num_frames
        chunks = say_chunks(clip.portrait, audio=clip.path, options=opts, timings=timings)
        try:
            for chunk in chunks:
                f = chunk.video.frames.cpu().numpy()
                out.append(f)
                n += f.shape[0]
                if n >= need:
                    break  # --max-seconds: the rest of the clip is not evaluated
        finally:
            chunks.close()
        self.timings = dict(timings.seconds)
        frames = np.concatenate(out) if out else np.zeros((0,) + clip.frames.shape[1:], np.uint8)
        return frames[clip.first_frame : need]


class TwinRow:
    """A trained twin driven by the clip's own sound track (its background loop, not the clip's
    frames, supplies head and eyes: only mouth metrics compare like with like)."""

    def __init__(self, path: Path, device: str = "cpu"):
        self.path, self.device = Path(path), device
        self.name, self.description = "facecast", f"facecast twin ({self.path.name})"
        self.timings: dict[str, float] = {}

    def generate(self, clip: Clip) -> np.ndarray:
        import cv2

        from ..device import resolve_device
        from ..twin.generate import Twin

        h, w = clip.frames.shape[1:3]
        t = time.perf_counter()
        twin = Twin.load(self.path, device=resolve_device(self.device), size=max(h, w))
        t1 = time.perf_counter()
        mouth = twin.mouth(clip.audio16k, clip.fps, clip.num_frames)
        t2 = time.perf_counter()
        frames = twin.render(mouth, 0, clip.fps).frames.numpy()
        self.timings = {"load": t1 - t, "mouth": t2 - t1, "render": time.perf_counter() - t2}
        if frames.shape[1:3] != (h, w):  # a non-square clip: the twin's own framing, resized
            frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        return frames


def _facecast(options: EvalOptions) -> Generator:
    if options.mode == "twin":
        return TwinRow(options.twin, options.device)
    return FacecastRow("facecast", "facecast (phones + loudness)", options.motion, options.device)


def _loudness(options: EvalOptions) -> Generator:
    return FacecastRow("loudness", "jaw driven by loudness alone",
                       dataclasses.replace(options.motion, drive="loudness"), options.device)


GENERATORS: dict[str, Callable[[EvalOptions], Generator]] = {
    "real": lambda o: RealRow(),
    "still": lambda o: StillRow(),
    "loudness": _loudness,
    "facecast": _facecast,
}
"""Row name -> factory. Add a row (another system, a dub generator) by adding an entry (a baseline
also to options.EVAL_BASELINES)."""
