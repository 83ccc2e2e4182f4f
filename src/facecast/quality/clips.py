"""Real clips prepared for `facecast eval`: decoded, tracked and given a portrait frame.

photo mode
    One frame of the clip (the first with the mouth nearly closed and the eyes open) is the
    portrait; the clip's own sound track drives it. Generated and real frames share one pixel
    space (the clip's frames, downscaled to ``EvalOptions.size`` or at most 1024 px on the
    longer side; the portrait is framed with ``frame_portrait(size=None)``, which keeps that
    picture as it is) and one frame grid (``SayOptions(fps=clip fps, size=None)``).
twin mode
    The same clip preparation; its facecast row is a trained twin (rows.TwinRow).

Later modes (dub: the clip's own video redriven) plug in as another entry of ``MODES`` (how a
clip is prepared, named in options.EVAL_MODES) plus their ``Generator``s (rows.GENERATORS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .. import face
from ..errors import InputError, NoFaceError
from ..types import ANALYSIS_RATE, Portrait
from .options import EvalOptions

__all__ = ["Clip", "MODES", "MAX_SIDE", "VIDEO_EXTENSIONS", "prepare_photo_clip", "pick_portrait_frame",
           "expand_clips"]

MAX_SIDE = 1024
"""Evaluation frames are at most this large on the longer side (frame_portrait's own limit)."""


@dataclass
class Clip:
    """A real clip prepared for evaluation (everything in the evaluation pixel space).

    frames: uint8 [N, H, W, 3] real frames.  points/found: their raw landmarks [N, 478, 3].
    audio16k: float32 mono speech at 16 kHz covering the N frames.  energy, voiced: [N] loudness
    envelope and VAD on the frame grid.  portrait: the portrait for generators.
    """

    path: Path
    name: str
    fps: float
    frames: np.ndarray
    points: np.ndarray
    found: np.ndarray
    audio16k: np.ndarray
    energy: np.ndarray
    voiced: np.ndarray
    portrait: Portrait
    portrait_index: int
    source_size: tuple[int, int]
    total_frames: int = 0
    notes: list[str] = field(default_factory=list)
    first_frame: int = 0
    """Index in the source video of frames[0] (> 0 with --start-fraction)."""

    @property
    def truncated(self) -> bool:
        """Only the first part of the clip is evaluated (--max-seconds)."""
        return self.total_frames > self.num_frames

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


def prepare_photo_clip(path: str | Path, options: EvalOptions) -> Clip:
    """Decode a real talking clip, track its face, and pick the portrait frame.

    Raises InputError for a missing/unreadable clip or one without a sound track, NoFaceError
    when no face is tracked in most of its frames.
    """
    from .. import analysis as analysis_mod
    from .. import audio as audio_mod
    from ..media import open_video

    path = Path(path)
    max_side = min(options.size or MAX_SIDE, MAX_SIDE)
    src = open_video(path, max_side=max_side)
    if not src.has_audio:
        raise InputError(f"{path}: has no audio track. facecast eval regenerates a clip from its own speech; "
                         "give a talking video with its sound.")
    notes: list[str] = []
    if options.size is not None and max(src.source_size) < options.size:
        notes.append(f"clip is {src.source_size[0]}x{src.source_size[1]}, smaller than --size {options.size}: not upscaled")
    total_guess = src.num_frames or 0
    start = int(round(options.start_fraction * total_guess))
    limit = None if options.max_seconds is None else max(1, int(math.floor(options.max_seconds * src.fps + 1e-9)))
    if limit is not None:
        limit += start
    parts, n = [], 0
    for chunk in src:
        parts.append(chunk.frames.numpy())
        n += chunk.num_frames
        if limit is not None and n >= limit:
            break
    if not parts:
        raise InputError(f"{path}: no video frames could be decoded. Re-encode it as H.264 MP4.")
    frames = np.concatenate(parts)
    total_frames = src.num_frames or frames.shape[0]
    if limit is not None:
        frames = frames[:limit]
    if start:
        if start >= frames.shape[0]:
            raise InputError(f"{path}: --start-fraction {options.start_fraction} leaves no frames to evaluate.")
        frames = frames[start:]
        total_frames -= start
        notes.append(f"evaluated from {start / src.fps:.2f} s (frame {start}, --start-fraction {options.start_fraction})")
    if limit is not None and frames.shape[0] < total_frames:
        notes.append(f"first {frames.shape[0] / src.fps:.1f} s of {total_frames / src.fps:.1f} s evaluated (--max-seconds)")
    # Even sides, like frame_portrait(size=None) makes them.
    h, w = frames.shape[1:3]
    frames = np.ascontiguousarray(frames[:, : h - h % 2, : w - w % 2])
    N = frames.shape[0]
    fps = src.fps

    points, found = face.track_video(frames, fps=fps, smooth=False)
    if found.mean() < 0.5:
        raise NoFaceError(f"{path}: a face was found in only {found.sum()} of {N} frames. facecast eval needs "
                          "a talking video with one clearly visible face.")
    if not found.all():
        notes.append(f"face not found in {int((~found).sum())} of {N} real frames")
    m = face.mouth_metrics(points)
    idx = pick_portrait_frame(m["mouth_open"], (m["eye_open_left"] + m["eye_open_right"]) / 2, found)
    lm = face.find_face(frames[idx], source=f"{path.name} frame {idx}")
    portrait = face.frame_portrait(frames[idx], lm, size=None, source=f"{path.name} frame {idx}")
    if portrait.image.shape != frames.shape[1:]:
        raise AssertionError(f"portrait framing changed the picture: {portrait.image.shape} vs {frames.shape[1:]}")

    audio16k = audio_mod.load_audio(path, sample_rate=ANALYSIS_RATE, mono=True).samples[0]
    audio16k = audio16k[int(round(start / fps * ANALYSIS_RATE)):]
    audio16k = audio16k[: int(math.ceil(N / fps * ANALYSIS_RATE)) + ANALYSIS_RATE // 10]
    energy = analysis_mod.loudness_envelope(audio16k, ANALYSIS_RATE, fps, N)
    voiced = analysis_mod.VoiceActivity().voiced_frames(audio16k, fps, N)
    clip = Clip(path=path, name=path.stem, fps=fps, frames=frames, points=points, found=found, audio16k=audio16k,
                energy=energy, voiced=voiced, portrait=portrait, portrait_index=idx, source_size=src.source_size,
                total_frames=max(total_frames, N), notes=notes, first_frame=start)
    return clip


def pick_portrait_frame(mouth_open: np.ndarray, eye_open: np.ndarray, found: np.ndarray) -> int:
    """The first frame whose mouth is nearly closed (within 0.02 IOD of the clip's 5th percentile)
    with the eyes open (>= 70 % of the median openness): a neutral face to animate."""
    ok = found & np.isfinite(mouth_open) & np.isfinite(eye_open)
    if not ok.any():
        raise NoFaceError("no frame with a tracked face to use as the portrait")
    closed = float(np.percentile(mouth_open[ok], 5))
    eye_med = float(np.median(eye_open[ok]))
    good = ok & (mouth_open <= closed + 0.02) & (eye_open >= 0.7 * eye_med)
    if good.any():
        return int(np.argmax(good))
    cand = np.where(ok, mouth_open, np.inf)
    return int(np.argmin(cand))


MODES: dict[str, Callable[[str | Path, EvalOptions], Clip]] = {"photo": prepare_photo_clip, "twin": prepare_photo_clip}
"""Mode name (options.EVAL_MODES) -> clip preparation, for the modes scored one clip at a time.
"dub" scores pairs of clips (the video of one, the sound of another): quality.dub_eval."""


VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")


def expand_clips(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise InputError(f"{p}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder.")
            out += found
        else:
            out.append(p)
    if not out:
        raise InputError("eval: give at least one talking video (or a folder of them).")
    return out
