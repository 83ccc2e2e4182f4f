"""`facecast eval`: regenerate real talking videos and compare them with the truth.

Modes
-----
photo   One frame of the clip (the first with the mouth nearly closed and the eyes open) is the
        portrait; the clip's own sound track drives it. Generated and real frames share one pixel
        space (the clip's frames, downscaled to ``EvalOptions.size`` or at most 1024 px on the
        longer side; the portrait is framed with ``frame_portrait(size=None)``, which keeps that
        picture as it is) and one frame grid (``SayOptions(fps=clip fps, size=None)``).

Later modes (dub: the clip's own video redriven; twin: a model trained on other clips of the same
person) plug in as another entry of ``MODES`` (how a clip is prepared) plus their ``Generator``s.

Rows
----
Every clip is scored for several *rows*, each a ``Generator`` (name -> frames for the clip):

real      the clip itself: the ceiling (sync and quality a real face has).
still     the portrait frame repeated for the whole clip: the floor (no motion at all).
loudness  facecast with ``MotionOptions(drive="loudness")``: the jaw follows loudness alone.
facecast  facecast as shipped (default MotionOptions).

A metric only counts as evidence when it separates the ceiling from the floor, and the table says
for each metric whether facecast is distinguishable from the floor and from the loudness baseline.

Metrics
-------
All landmarks are mediapipe face-mesh points tracked in each video with ``face.track_video``
(unsmoothed: no filter can hide or create motion). IOD = inter-ocular distance (eye-corner
centres) of that frame. Per-frame comparisons run over the frames both videos have.

aperture_corr    Pearson correlation, at lag 0, of the mouth opening (``mouth_metrics``
                 "mouth_open": inner-lip gap along the face's vertical axis / IOD) of the row
                 with the real clip's. 1 = the same opening pattern. A constant opening (the still
                 row) has no correlation: shown as "-" and scored as 0.
aperture_lag     The lag in -10..+10 frames that maximises that correlation; positive = the row's
                 mouth moves later than the real one. ``aperture_corr_best`` is the correlation
                 there.
av_offset        Audio-visual offset: the lag in -10..+10 frames maximising the correlation of
                 the row's mouth opening with the speech loudness envelope
                 (``audio.loudness_envelope`` at the clip fps); positive = video late.
                 ``av_corr`` is that peak correlation. A real face has its own offset (the mouth
                 opens slightly before the sound); the row should match the real value.
lmd              Normalised mouth landmark distance. Chen et al. 2018 ("Lip Movements Generation
                 at a Glance", ECCV) define LMD as the Euclidean distance between corresponding
                 mouth landmarks of the real and the generated frame, averaged over landmarks and
                 frames, in pixels of their (aligned, fixed-size) face crops; Wav2Lip and later
                 papers report the same pixel quantity on their crops. Ours: the 40 lip landmarks
                 (outer and inner contours) of each face are expressed relative to their own
                 centroid (translation removed), rotated so the eye line is horizontal (roll
                 removed) and divided by that frame's IOD (scale removed), then the mean
                 Euclidean distance is taken. So it measures mouth *shape* only, in IOD units,
                 independent of resolution and head position; it is not comparable to published
                 pixel LMDs.
closed_in_silence  Fraction of silent frames (``audio.VoiceActivity``, silero-VAD, says no
                 speech) whose mouth opening is below a threshold = the real clip's closed level
                 (5th percentile of its mouth opening) + 0.05 IOD. Needs >= 5 silent frames
                 (else "-"). Compared with the real clip's own value.
blink_rate       Blinks per minute: runs of frames whose eye openness (mean of both eyes'
                 lid gap / eye width) is below 50 % of the clip's median, lasting at most 0.5 s
                 (longer dips are squints or looks down), counted as events.
jitter           Landmark jitter: median over frames of the mean |p[t+1] - 2 p[t] + p[t-1]| /
                 IOD over 22 non-mouth landmarks (eye corners, brows, nose, forehead, temples).
                 Includes the tracker's own noise (~0.003-0.005 on a still face): the still row
                 shows that floor. Lower is steadier.
identity         dlib's 128-D face-recognition embedding (ResNet model from the PyPI package
                 ``face-recognition-models``, run by ``dlib-bin``): mean Euclidean distance
                 between the portrait's embedding and those of up to 12 frames of the row
                 (dlib's "same person" threshold is 0.6; 0 = identical). Skipped with a note
                 when dlib is not installed.
psnr_outside_mouth, ssim_outside_mouth
                 PSNR (dB, RGB) and SSIM (luma, skimage) of the row against the real frame over
                 the pixels outside the lower face (convex hull of lips, jaw line and chin in
                 either frame, dilated by 0.15 IOD): background, hair, eyes and forehead must
                 stay put. Up to 150 evenly spaced frames. The real row is identical (inf / 1).
duration_diff    (row frames - real frames) / fps, seconds.

Lip-sync margins
----------------
A clip of 5-30 s gives a noisy correlation, so "facecast is above the loudness baseline" is
stated with an interval, not a fixed threshold. ``corr_margin`` gives
aperture_corr(facecast) - aperture_corr(other row) and its 95 % interval by a paired
moving-block bootstrap: blocks of ``MARGIN_BLOCK_S`` seconds of frames are resampled, the same
blocks for both rows and the real clip (mouth openings are autocorrelated over a few hundred
milliseconds, so resampling single frames would give intervals far too narrow). The verdict is
"above" when the whole interval is above 0, "below" when it is below, else "not separable";
clips shorter than ``MARGIN_MIN_BLOCKS`` blocks get no interval ("n/a").
``pooled_margin`` is the mean margin over clips, its interval from resampling the clips and,
inside each, the blocks (clips of one speaker count as separate clips).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from . import face as face_mod
from .errors import InputError, NoFaceError
from .options import MotionOptions, RenderOptions, SayOptions
from .sysinfo import machine_info
from .types import ANALYSIS_RATE, Portrait

log = logging.getLogger(__name__)

__all__ = [
    "EvalOptions", "Clip", "Generator", "RowResult", "ClipReport", "MetricSpec", "METRICS",
    "GENERATORS", "MODES", "evaluate", "evaluate_clip", "prepare_photo_clip", "rich_table",
    "summary_rows", "markdown_report", "write_plots", "identity_available", "Margin", "corr_margin",
    "pooled_margin", "margin_summary",
]

MAX_SIDE = 1024
"""Evaluation frames are at most this large on the longer side (frame_portrait's own limit)."""
LAG_RANGE = 10
"""Lags searched by aperture_lag and av_offset, in frames either way."""
MARGIN_BLOCK_S = 1.0
"""Block length of the lip-sync margin bootstrap (seconds): longer than the mouth's own memory."""
MARGIN_BOOTSTRAPS = 2000
MARGIN_MIN_BLOCKS = 4
"""Clips shorter than this many blocks get no interval: too few blocks to resample."""


@dataclass(frozen=True)
class EvalOptions:
    """How `facecast eval` runs.

    mode: how a clip is turned into a task ("photo": one frame of the clip is the portrait).
    size: longer side of the evaluation frames in pixels (the clip is downscaled to it, never
        upscaled); None = the clip's own size, at most 1024.
    max_seconds: evaluate only the first seconds of each clip (None = all of it).
    plot_dir: where to write PNG plots (aperture over time, contact sheet); None = no plots.
    baselines: the reference rows besides facecast, any of "real", "still", "loudness".
    identity: compute the dlib identity distance (skipped with a note when dlib is missing).
    motion: the MotionOptions of the facecast row (the loudness row uses them with
        drive="loudness").
    device: render device for the generated rows.
    twin: the .twin file of mode "twin" (its row replaces facecast's portrait row; the
        baselines still animate a frame of the clip).
    start_fraction: evaluate from this fraction of each clip on (e.g. 0.8: the last 20 %, the
        part a twin was trained without).
    """

    mode: str = "photo"
    size: int | None = None
    max_seconds: float | None = None
    plot_dir: Path | None = None
    baselines: tuple[str, ...] = ("real", "still", "loudness")
    identity: bool = True
    motion: MotionOptions = MotionOptions()
    device: str = "cpu"
    twin: Path | None = None
    start_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"--mode {self.mode}: unknown mode. Use one of: {', '.join(MODES)}.")
        if self.mode == "twin" and self.twin is None:
            raise InputError("--mode twin needs --twin FILE.twin (made by `facecast twin train`).")
        if self.twin is not None and self.mode != "twin":
            raise InputError("--twin goes with --mode twin.")
        if not 0.0 <= self.start_fraction < 1.0:
            raise InputError(f"--start-fraction {self.start_fraction}: must be in [0, 1).")
        bad = [b for b in self.baselines if b not in GENERATORS or b == "facecast"]
        if bad:
            raise InputError(f"--baselines {','.join(bad)}: unknown baseline. Use any of: real, still, loudness.")
        if self.size is not None and (self.size < 64 or self.size % 2):
            raise InputError(f"--size {self.size}: must be an even number of pixels >= 64.")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise InputError(f"--max-seconds {self.max_seconds}: must be > 0.")


# --------------------------------------------------------------------------------------------
# Clips and generators
# --------------------------------------------------------------------------------------------


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
        from .pipeline import Timings, say_chunks

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

        from .device import resolve_device
        from .twin.generate import Twin

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
"""Row name -> factory. Add a row (another system, a dub/twin generator) by adding an entry."""


# --------------------------------------------------------------------------------------------
# Photo mode: preparing a clip
# --------------------------------------------------------------------------------------------


def prepare_photo_clip(path: str | Path, options: EvalOptions) -> Clip:
    """Decode a real talking clip, track its face, and pick the portrait frame.

    Raises InputError for a missing/unreadable clip or one without a sound track, NoFaceError
    when no face is tracked in most of its frames.
    """
    from . import analysis as analysis_mod
    from . import audio as audio_mod
    from .media import video as video_mod

    path = Path(path)
    max_side = min(options.size or MAX_SIDE, MAX_SIDE)
    src = video_mod.open_video(path, max_side=max_side)
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

    points, found = face_mod.track_video(frames, fps=fps, smooth=False)
    if found.mean() < 0.5:
        raise NoFaceError(f"{path}: a face was found in only {found.sum()} of {N} frames. facecast eval needs "
                          "a talking video with one clearly visible face.")
    if not found.all():
        notes.append(f"face not found in {int((~found).sum())} of {N} real frames")
    m = face_mod.mouth_metrics(points)
    idx = pick_portrait_frame(m["mouth_open"], (m["eye_open_left"] + m["eye_open_right"]) / 2, found)
    lm = face_mod.find_face(frames[idx], source=f"{path.name} frame {idx}")
    portrait = face_mod.frame_portrait(frames[idx], lm, size=None, source=f"{path.name} frame {idx}")
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
"""Mode name -> clip preparation. A "dub" or "twin" mode adds an entry and its generators."""


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

LIPS = tuple(dict.fromkeys(face_mod.LIPS_OUTER_UPPER + face_mod.LIPS_OUTER_LOWER
                           + face_mod.LIPS_INNER_UPPER + face_mod.LIPS_INNER_LOWER))  # 40 points
LOWER_FACE = tuple(dict.fromkeys(LIPS + face_mod.JAW_LOWER + (face_mod.CHIN, 58, 288)))
STABLE = (33, 133, 263, 362,          # eye corners
          70, 105, 107, 336, 334, 300,  # brows
          1, 4, 6, 168, 197, 195,        # nose ridge and tip
          10, 151, 234, 454, 127, 356)   # forehead, temples/cheeks


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is shown and judged.

    better: "higher", "lower", "zero" (|value| small is better) or "real" (closer to the real
        clip's value is better).  tol: differences up to this are "the same" (the metric's
        resolution on 5-20 s clips).  missing: the score a missing value (NaN) counts as, in the
        metric's own units (e.g. no correlation = 0).  lipsync: a lip-sync metric (judged against
        the loudness baseline too).
    """

    key: str
    label: str
    unit: str
    better: str
    tol: float
    fmt: str = "{:.3f}"
    missing: float = float("nan")
    lipsync: bool = False


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("aperture_corr", "mouth aperture corr. with real (lag 0)", "r", "higher", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("aperture_corr_best", "  ... at best lag", "r", "higher", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("aperture_lag", "  best lag vs real (+ = late)", "frames", "zero", 1.0, "{:+.0f}", LAG_RANGE, True),
    MetricSpec("lmd", "mouth landmark distance (norm. LMD)", "IOD", "lower", 0.005, "{:.3f}", float("nan"), True),
    MetricSpec("av_corr", "aperture-loudness peak corr.", "r", "real", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("av_offset", "  AV offset (+ = video late)", "frames", "real", 1.0, "{:+.0f}", LAG_RANGE, True),
    MetricSpec("closed_in_silence", "closed mouth in silence", "fraction", "real", 0.10, "{:.2f}"),
    MetricSpec("blink_rate", "blink rate", "/min", "real", 3.0, "{:.1f}"),
    MetricSpec("jitter", "landmark jitter (non-mouth)", "IOD/frame^2", "lower", 0.001, "{:.4f}"),
    MetricSpec("identity", "identity distance to portrait (dlib)", "L2", "lower", 0.03, "{:.3f}"),
    MetricSpec("psnr_outside_mouth", "PSNR outside lower face", "dB", "higher", 0.5, "{:.1f}"),
    MetricSpec("ssim_outside_mouth", "SSIM outside lower face", "", "higher", 0.01, "{:.3f}"),
    MetricSpec("duration_diff", "duration difference", "s", "zero", 0.05, "{:+.2f}"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return float("nan")
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def lagged_corr(x: np.ndarray, ref: np.ndarray, max_lag: int = LAG_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """(lags, r): Pearson correlation of x[t + lag] with ref[t] for lag in -max_lag..max_lag.
    A positive best lag means x happens later than ref."""
    n = min(len(x), len(ref))
    x, ref = x[:n], ref[:n]
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(lags.shape, np.nan)
    for i, L in enumerate(lags):
        if L >= 0:
            r[i] = _corr(x[L:], ref[: n - L]) if n - L > 3 else np.nan
        else:
            r[i] = _corr(x[: n + L], ref[-L:]) if n + L > 3 else np.nan
    return lags, r


def _best_lag(x: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    lags, r = lagged_corr(x, ref)
    if not np.isfinite(r).any():
        return float("nan"), float("nan")
    i = int(np.nanargmax(r))
    return float(lags[i]), float(r[i])


@dataclass(frozen=True)
class Margin:
    """A difference of correlations with its 95 % bootstrap interval."""

    delta: float
    lo: float
    hi: float

    @property
    def verdict(self) -> str:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return "n/a"
        return "above" if self.lo > 0 else "below" if self.hi < 0 else "not separable"

    def to_json(self) -> dict:
        r = lambda v: None if not np.isfinite(v) else round(float(v), 4)  # noqa: E731
        return {"delta": r(self.delta), "lo": r(self.lo), "hi": r(self.hi), "verdict": self.verdict}

    def text(self) -> str:
        if not np.isfinite(self.delta):
            return "n/a"
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return f"{self.delta:+.2f} (no interval: clip under {MARGIN_MIN_BLOCKS} x {MARGIN_BLOCK_S:g} s)"
        return f"{self.delta:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]: {self.verdict}"


def _corr_rows(x: np.ndarray, ref: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x [B, N] with the same row of ref [B, N] over the frames where
    ok [B, N]; NaN for rows with < 3 frames or no variation."""
    w = ok.astype(np.float64)
    cnt = w.sum(1)
    x, ref = np.where(ok, x, 0.0), np.where(ok, ref, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, mr = (x * w).sum(1) / cnt, (ref * w).sum(1) / cnt
        dx, dr = (x - mx[:, None]) * w, (ref - mr[:, None]) * w
        sxx, srr, sxr = (dx * dx).sum(1), (dr * dr).sum(1), (dx * dr).sum(1)
        r = sxr / np.sqrt(sxx * srr)
    r[(cnt < 3) | (sxx < 1e-12 * np.maximum(cnt, 1)) | (srr < 1e-12 * np.maximum(cnt, 1))] = np.nan
    return r


def _block_indices(n: int, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] frame indices: each row is ceil(n / block) blocks of ``block`` consecutive
    frames with random starts (moving-block bootstrap), cut to n."""
    block = max(1, min(block, n))
    k = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, k))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, k * block)[:, :n]


def _margin_replicates(x: np.ndarray, y: np.ndarray, ref: np.ndarray, fps: float, block_s: float,
                       n_boot: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """(corr(x, ref) - corr(y, ref), its bootstrap replicates [n_boot]). Missing correlations
    (a constant row, e.g. the still floor) count as 0, as in the tables."""
    n = min(len(x), len(y), len(ref))
    if n < 3:
        return float("nan"), np.full(n_boot, np.nan)
    x, y, ref = (np.asarray(a[:n], np.float64) for a in (x, y, ref))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(ref)
    full = np.nan_to_num(_corr_rows(np.stack([x, y]), np.stack([ref, ref]), np.stack([ok, ok])), nan=0.0)
    block = max(1, int(round(block_s * fps)))
    if n < MARGIN_MIN_BLOCKS * block:
        return float(full[0] - full[1]), np.full(n_boot, np.nan)
    reps = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # resamples at a time: memory stays ~100 MB for hour-long clips
    for i in range(0, n_boot, chunk):
        idx = _block_indices(n, block, min(chunk, n_boot - i), rng)
        rx = np.nan_to_num(_corr_rows(x[idx], ref[idx], ok[idx]), nan=0.0)
        ry = np.nan_to_num(_corr_rows(y[idx], ref[idx], ok[idx]), nan=0.0)
        reps[i:i + len(idx)] = rx - ry
    return float(full[0] - full[1]), reps


def corr_margin(x: np.ndarray, y: np.ndarray, ref: np.ndarray, fps: float, *, block_s: float = MARGIN_BLOCK_S,
                n_boot: int = MARGIN_BOOTSTRAPS, seed: int = 0) -> Margin:
    """corr(x, ref) - corr(y, ref) at lag 0 with its 95 % paired moving-block bootstrap interval.

    x, y: per-frame series of two rows (e.g. facecast's and the loudness baseline's mouth
    opening) [N]; ref: the real clip's [N]; NaN frames are left out of every correlation."""
    d, reps = _margin_replicates(x, y, ref, fps, block_s, n_boot, np.random.default_rng(seed))
    if not np.isfinite(reps).any():  # too short for an interval (or no frames at all)
        return Margin(d, float("nan"), float("nan"))
    lo, hi = np.nanpercentile(reps, [2.5, 97.5])
    return Margin(d, float(lo), float(hi))


def pooled_margin(series: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], *, block_s: float = MARGIN_BLOCK_S,
                  n_boot: int = MARGIN_BOOTSTRAPS, seed: int = 0) -> Margin:
    """Mean over clips of corr_margin's difference; the interval resamples clips (with
    replacement) and, within each, blocks. ``series``: (x, y, ref, fps) per clip; clips too
    short for an interval are left out."""
    rng = np.random.default_rng(seed)
    deltas, reps = [], []
    for x, y, ref, fps in series:
        d, r = _margin_replicates(x, y, ref, fps, block_s, n_boot, rng)
        if np.isfinite(r).any():  # clips too short for an interval are left out
            deltas.append(d)
            reps.append(r)
    if not deltas:
        return Margin(float("nan"), float("nan"), float("nan"))
    reps_a = np.stack(reps)  # [K, n_boot]
    pick = rng.integers(0, len(deltas), size=(n_boot, len(deltas)))
    pooled = reps_a[pick, np.arange(n_boot)[:, None]].mean(1)
    lo, hi = np.nanpercentile(pooled, [2.5, 97.5])
    return Margin(float(np.mean(deltas)), float(lo), float(hi))


MARGIN_ROWS = ("loudness",)
"""Rows facecast's lip sync is compared with, with an interval (ClipReport.margins). Not the
still floor: its opening is constant up to tracker noise, which the verdict table covers."""


def lipsync_margins(rows: dict[str, "RowResult"], fps: float) -> dict[str, Margin]:
    """{"vs_loudness": Margin} when both rows are present (aperture r, lag 0)."""
    out: dict[str, Margin] = {}
    fc, real = rows.get("facecast"), rows.get("real")
    if fc is None or real is None or fc.mouth_open is None or real.mouth_open is None:
        return out
    for name in MARGIN_ROWS:
        other = rows.get(name)
        if other is not None and other.mouth_open is not None:
            out[f"vs_{name}"] = corr_margin(fc.mouth_open, other.mouth_open, real.mouth_open, fps)
    return out


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: eye-line unit vector [N, 2], face-down unit vector [N, 2], IOD [N]."""
    xy = points[:, :, :2].astype(np.float64)
    right = xy[:, [33, 133]].mean(axis=1)
    left = xy[:, [263, 362]].mean(axis=1)
    across = left - right
    iod = np.linalg.norm(across, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = across / iod[:, None]
    down = np.stack([-u[:, 1], u[:, 0]], axis=-1)
    return u, down, iod


def normalised_lips(points: np.ndarray) -> np.ndarray:
    """[N, 40, 2] lip landmarks relative to their centroid, in the face's eye-line frame, / IOD."""
    u, down, iod = _face_frame(points)
    lips = points[:, list(LIPS), :2].astype(np.float64)
    lips = lips - lips.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (lips * u[:, None, :]).sum(-1) / iod[:, None]
        b = (lips * down[:, None, :]).sum(-1) / iod[:, None]
    return np.stack([a, b], axis=-1)


def lmd(points: np.ndarray, real: np.ndarray) -> float:
    n = min(len(points), len(real))
    d = np.linalg.norm(normalised_lips(points[:n]) - normalised_lips(real[:n]), axis=-1).mean(axis=1)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def jitter(points: np.ndarray) -> float:
    if len(points) < 3:
        return float("nan")
    _, _, iod = _face_frame(points)
    p = points[:, list(STABLE), :2].astype(np.float64)
    acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1).mean(axis=1) / iod[1:-1]
    return float(np.nanmedian(acc)) if np.isfinite(acc).any() else float("nan")


def blink_events(eye_open: np.ndarray, fps: float = 25.0, max_seconds: float = 0.5) -> int:
    """Runs of frames with the eye openness below 50 % of the clip's median, lasting at most
    ``max_seconds`` (blinks take 0.1-0.4 s; a longer dip is a squint or a look down)."""
    ok = np.isfinite(eye_open)
    if ok.sum() < 3:
        return 0
    base = float(np.median(eye_open[ok]))
    below = np.where(ok, eye_open < 0.5 * base, False)
    edges = np.diff(np.concatenate([[0], below.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int(np.count_nonzero((ends - starts) <= max(1, round(max_seconds * fps))))


def blink_rate(eye_open: np.ndarray, fps: float) -> float:
    minutes = len(eye_open) / fps / 60.0
    return blink_events(eye_open, fps) / minutes if minutes > 0 else float("nan")


def closed_in_silence(mouth_open: np.ndarray, voiced: np.ndarray, real_mouth_open: np.ndarray) -> float:
    n = min(len(mouth_open), len(voiced))
    silent = ~voiced[:n] & np.isfinite(mouth_open[:n])
    if silent.sum() < 5:
        return float("nan")
    ok = np.isfinite(real_mouth_open)
    thr = float(np.percentile(real_mouth_open[ok], 5)) + 0.05
    return float((mouth_open[:n][silent] < thr).mean())


def _lower_face_mask(points: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    if not np.isfinite(points).all():
        return mask.astype(bool)
    hull = cv2.convexHull(points[list(LOWER_FACE), :2].astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1)
    r = max(1, int(round(0.15 * iod)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def image_quality_outside_mouth(gen: np.ndarray, real: np.ndarray, gen_pts: np.ndarray, real_pts: np.ndarray,
                                max_frames: int = 150) -> tuple[float, float]:
    """(PSNR dB, SSIM) over pixels outside the lower face of both frames (see module doc)."""
    from skimage.metrics import structural_similarity

    n = min(len(gen), len(real))
    if n == 0:
        return float("nan"), float("nan")
    idx = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    H, W = real.shape[1:3]
    se, count, ssims = 0.0, 0, []
    w = np.array([0.299, 0.587, 0.114], np.float32)
    for i in idx:
        g, r = gen[i], real[i]
        if g.shape != r.shape:
            raise ValueError(f"generated frames are {g.shape}, real ones {r.shape}: not in the same pixel space")
        iod = float(np.nan_to_num(_face_frame(real_pts[i:i + 1])[2][0], nan=0.0)) or 0.1 * W
        mask = _lower_face_mask(real_pts[i], (H, W), iod) | _lower_face_mask(gen_pts[i], (H, W), iod)
        keep = ~mask
        if not keep.any():
            continue
        d = g.astype(np.float32) - r.astype(np.float32)
        se += float((d[keep] ** 2).sum())
        count += int(keep.sum()) * 3
        if np.array_equal(g, r):
            ssims.append(1.0)
            continue
        _, smap = structural_similarity(g.astype(np.float32) @ w, r.astype(np.float32) @ w, data_range=255.0,
                                        full=True)
        ssims.append(float(smap[keep].mean()))
    mse = se / max(count, 1)
    psnr = float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    return psnr, float(np.mean(ssims)) if ssims else float("nan")


# --------------------------------------------------------------------------------------------
# Identity (dlib)
# --------------------------------------------------------------------------------------------


class IdentityModel:
    """dlib's 5-point aligner + 128-D ResNet face descriptor, from the files of the PyPI package
    face-recognition-models (located without importing it: its __init__ needs pkg_resources,
    which recent setuptools no longer ships). Never downloads anything."""

    def __init__(self) -> None:
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("face_recognition_models is not installed")
        models = Path(list(spec.submodule_search_locations)[0]) / "models"
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._dlib = dlib

    def embed(self, image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        """128-D descriptor of the face whose mediapipe landmarks are ``points`` (None if NaN)."""
        if not np.isfinite(points).all():
            return None
        x0, y0 = points[:, :2].min(axis=0)
        x1, y1 = points[:, :2].max(axis=0)
        H, W = image.shape[:2]
        rect = self._dlib.rectangle(int(max(0, x0)), int(max(0, y0)), int(min(W - 1, x1)), int(min(H - 1, y1)))
        img = np.ascontiguousarray(image, dtype=np.uint8)
        shape = self._shape(img, rect)
        return np.asarray(self._rec.compute_face_descriptor(img, shape), np.float64)


_IDENTITY: IdentityModel | None = None
_IDENTITY_ERROR: str | None = None


def identity_model() -> IdentityModel | None:
    """The shared IdentityModel, or None (with the reason in identity_unavailable_reason())."""
    global _IDENTITY, _IDENTITY_ERROR
    if _IDENTITY is None and _IDENTITY_ERROR is None:
        try:
            _IDENTITY = IdentityModel()
        except (ImportError, RuntimeError, OSError) as exc:
            _IDENTITY_ERROR = (f"identity skipped: dlib face recognition unavailable ({exc}). "
                               "Install it with: pip install dlib-bin face-recognition-models")
    return _IDENTITY


def identity_available() -> bool:
    return identity_model() is not None


def identity_unavailable_reason() -> str | None:
    identity_model()
    return _IDENTITY_ERROR


# --------------------------------------------------------------------------------------------
# Scoring one row
# --------------------------------------------------------------------------------------------


@dataclass
class RowResult:
    name: str
    description: str
    metrics: dict[str, float]
    num_frames: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    mouth_open: np.ndarray | None = None  # per frame (IOD), for plots and the JSON series
    eye_open: np.ndarray | None = None  # per frame, mean of both eyes' lid gap / eye width
    thumbs: list[np.ndarray] = field(default_factory=list)  # contact-sheet crops


def score_row(clip: Clip, frames: np.ndarray, points: np.ndarray, found: np.ndarray,
              identity: IdentityModel | None, portrait_emb: np.ndarray | None) -> dict[str, float]:
    """All metrics of one row against the real clip."""
    n = min(len(frames), clip.num_frames)
    m = face_mod.mouth_metrics(points)
    real_m = face_mod.mouth_metrics(clip.points)
    ap, real_ap = m["mouth_open"], real_m["mouth_open"]
    out: dict[str, float] = {}
    out["aperture_corr"] = _corr(ap[:n], real_ap[:n])
    lag, r = _best_lag(ap[:n], real_ap[:n])
    out["aperture_lag"], out["aperture_corr_best"] = lag, r
    out["lmd"] = lmd(points[:n], clip.points[:n])
    off, avr = _best_lag(ap[:n], clip.energy[:n])
    out["av_offset"], out["av_corr"] = off, avr
    out["closed_in_silence"] = closed_in_silence(ap, clip.voiced, real_ap)
    out["blink_rate"] = blink_rate((m["eye_open_left"] + m["eye_open_right"]) / 2, clip.fps)
    out["jitter"] = jitter(points)
    psnr, ssim = image_quality_outside_mouth(frames, clip.frames, points, clip.points)
    out["psnr_outside_mouth"], out["ssim_outside_mouth"] = psnr, ssim
    # With --max-seconds every row is cut to the evaluated frames: its full length is unknown.
    out["duration_diff"] = float("nan") if clip.truncated else (len(frames) - clip.num_frames) / clip.fps
    out["identity"] = float("nan")
    if identity is not None and portrait_emb is not None:
        idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), 12)).round().astype(int))
        dists = []
        for i in idx:
            e = identity.embed(frames[i], points[i])
            if e is not None:
                dists.append(float(np.linalg.norm(e - portrait_emb)))
        out["identity"] = float(np.mean(dists)) if dists else float("nan")
    if not found.any():
        for k in ("aperture_corr", "aperture_corr_best", "lmd", "av_corr", "jitter"):
            out[k] = float("nan")
    return out


# --------------------------------------------------------------------------------------------
# Verdicts: does the metric discriminate?
# --------------------------------------------------------------------------------------------


def _score(spec: MetricSpec, v: float, real: float) -> float:
    """Distance from ideal (lower = better) in the metric's units; NaN -> spec.missing."""
    if not np.isfinite(v):
        if v == float("inf") and spec.better == "higher":
            return -1e9
        if not np.isfinite(spec.missing):
            return float("nan")
        v = spec.missing
    if spec.better == "higher":
        return -v
    if spec.better == "lower":
        return v
    if spec.better == "zero":
        return abs(v)
    if not np.isfinite(real):
        return float("nan")
    return abs(v - real)


def _compare(spec: MetricSpec, a: float, b: float, real: float) -> str:
    """'better' / 'same' / 'worse' / 'n/a': row a against row b on this metric."""
    sa, sb = _score(spec, a, real), _score(spec, b, real)
    if not (np.isfinite(sa) and np.isfinite(sb)):
        return "n/a"
    if abs(sa - sb) <= spec.tol:
        return "same"
    return "better" if sa < sb else "worse"


def verdicts(rows: dict[str, RowResult]) -> dict[str, dict[str, str | bool]]:
    """Per metric: 'floor' (does the metric tell the real clip from the still floor?),
    'vs_still' and 'vs_loudness' (facecast compared with them: better/same/worse/n/a),
    'vs_real' (facecast against the ceiling), and 'evidence' (the metric separates real from
    still AND facecast is distinguishable from still)."""
    out: dict[str, dict[str, str | bool]] = {}
    fc = rows.get("facecast")
    real = rows.get("real")
    still = rows.get("still")
    loud = rows.get("loudness")
    for spec in METRICS:
        rv = real.metrics.get(spec.key, float("nan")) if real else float("nan")
        if spec.better == "real" and real is None:
            continue
        v: dict[str, str | bool] = {}
        if real and still:
            v["floor"] = _compare(spec, rv, still.metrics[spec.key], rv)
        if fc and still:
            v["vs_still"] = _compare(spec, fc.metrics[spec.key], still.metrics[spec.key], rv)
        if fc and loud:
            v["vs_loudness"] = _compare(spec, fc.metrics[spec.key], loud.metrics[spec.key], rv)
        if fc and real:
            v["vs_real"] = _compare(spec, fc.metrics[spec.key], rv, rv)
        v["evidence"] = v.get("floor") == "better" and v.get("vs_still") in ("better", "worse")
        out[spec.key] = v
    return out


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass
class ClipReport:
    clip: str
    path: str
    fps: float
    num_frames: int
    seconds: float
    size: tuple[int, int]
    source_size: tuple[int, int]
    portrait_index: int
    rows: dict[str, RowResult]
    verdicts: dict[str, dict[str, str | bool]]
    notes: list[str]
    options: dict
    plots: list[str] = field(default_factory=list)
    energy: np.ndarray | None = None  # [N] speech loudness on the frame grid
    voiced: np.ndarray | None = None  # [N] VAD
    margins: dict[str, Margin] = field(default_factory=dict)  # lip-sync margins (see lipsync_margins)

    def to_json(self) -> dict:
        def num(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
            return x

        return {
            "clip": self.clip, "path": self.path, "fps": self.fps, "num_frames": self.num_frames,
            "seconds": round(self.seconds, 3), "size": list(self.size), "source_size": list(self.source_size),
            "portrait_frame": self.portrait_index, "notes": self.notes, "options": self.options,
            "rows": {name: {"description": r.description, "num_frames": r.num_frames,
                            "generate_seconds": round(r.seconds, 3),
                            "stage_seconds": {k: round(v, 3) for k, v in r.stage_seconds.items()},
                            "metrics": {k: num(v) for k, v in r.metrics.items()}}
                     for name, r in self.rows.items()},
            "verdicts": self.verdicts, "plots": self.plots,
            "lipsync_margins": {k: m.to_json() for k, m in self.margins.items()},
            # Per-frame series (frame i at i / fps s), for plotting and diagnosis by machines.
            "series": {
                "loudness": _series(self.energy), "voiced": None if self.voiced is None else
                [int(v) for v in self.voiced],
                **{f"{name}.mouth_open": _series(r.mouth_open) for name, r in self.rows.items()},
                **{f"{name}.eye_open": _series(r.eye_open) for name, r in self.rows.items()},
            },
        }


def _series(x: np.ndarray | None) -> list | None:
    if x is None:
        return None
    return [None if not np.isfinite(v) else round(float(v), 4) for v in x]


def _row_order(options: EvalOptions) -> list[str]:
    names = [b for b in ("real", "still", "loudness") if b in options.baselines]
    return names + ["facecast"]


def evaluate_clip(path: str | Path, options: EvalOptions = EvalOptions(),
                  progress: Callable[[str], None] | None = None) -> ClipReport:
    """Regenerate one clip with every row and score it (see the module docstring)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    say(f"{Path(path).name}: decoding and tracking")
    clip = MODES[options.mode](path, options)
    notes = list(clip.notes)
    ident = identity_model() if options.identity else None
    if options.identity and ident is None:
        notes.append(identity_unavailable_reason() or "identity skipped")
    portrait_emb = ident.embed(clip.portrait.image, clip.portrait.face.points) if ident else None
    thumb_idx = _sheet_indices(clip)
    boxes = [_crop_box(clip.points[i], clip.frames.shape[1:3]) for i in thumb_idx]
    rows: dict[str, RowResult] = {}
    for name in _row_order(options):
        gen = GENERATORS[name](options)
        say(f"{clip.name}: {name} ({gen.description})")
        t = time.perf_counter()
        frames = gen.generate(clip)
        gen_s = time.perf_counter() - t
        if frames.shape[1:] != clip.frames.shape[1:]:
            raise AssertionError(f"{name}: frames are {frames.shape[1:]}, the clip's {clip.frames.shape[1:]}")
        if name == "real":
            points, found = clip.points, clip.found
        else:
            # Frame by frame: the still row is a broadcast view, never materialised.
            points, found = face_mod.track_video(iter(frames), fps=clip.fps, smooth=False)
        if not found.all():
            notes.append(f"{name}: face not found in {int((~found).sum())} of {len(found)} frames")
        metrics = score_row(clip, frames, points, found, ident, portrait_emb)
        thumbs = [_thumb(frames[min(i, len(frames) - 1)], b) for i, b in zip(thumb_idx, boxes)] if len(frames) else []
        mm = face_mod.mouth_metrics(points)
        rows[name] = RowResult(name, gen.description, metrics, int(len(frames)), gen_s,
                               getattr(gen, "timings", {}), mm["mouth_open"],
                               (mm["eye_open_left"] + mm["eye_open_right"]) / 2, thumbs)
        del frames
    report = ClipReport(
        clip=clip.name, path=str(clip.path), fps=clip.fps, num_frames=clip.num_frames, seconds=clip.seconds,
        size=(int(clip.frames.shape[2]), int(clip.frames.shape[1])), source_size=clip.source_size,
        portrait_index=clip.portrait_index, rows=rows, verdicts=verdicts(rows), notes=notes,
        options=_options_json(options), energy=clip.energy, voiced=clip.voiced,
        margins=lipsync_margins(rows, clip.fps),
    )
    if options.plot_dir is not None:
        report.plots = write_plots(report, clip, Path(options.plot_dir))
    say(f"{clip.name}: done in {time.perf_counter() - t0:.0f} s")
    return report


def evaluate(paths: Iterable[str | Path], options: EvalOptions = EvalOptions(),
             progress: Callable[[str], None] | None = None) -> list[ClipReport]:
    """evaluate_clip for each clip (a folder stands for the videos in it)."""
    return [evaluate_clip(p, options, progress) for p in expand_clips(paths)]


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


def _options_json(options: EvalOptions) -> dict:
    d = dataclasses.asdict(options)
    d["plot_dir"] = str(options.plot_dir) if options.plot_dir is not None else None
    d["baselines"] = list(options.baselines)
    d["twin"] = str(options.twin) if options.twin is not None else None
    return d


# --------------------------------------------------------------------------------------------
# Output: tables, markdown, JSON, plots
# --------------------------------------------------------------------------------------------


def fmt_value(spec: MetricSpec, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return spec.fmt.format(v)


_VERDICT_WORDS = {"better": "above", "same": "≈", "worse": "below", "n/a": "n/a"}


def _verdict_text(v: dict) -> str:
    parts = []
    if "floor" in v and v["floor"] != "better":
        parts.append("can't tell real from still" if v["floor"] in ("same", "worse") else "n/a")
    if "vs_still" in v:
        parts.append(f"{_VERDICT_WORDS[v['vs_still']]} still")
    if "vs_loudness" in v:
        parts.append(f"{_VERDICT_WORDS[v['vs_loudness']]} loudness")
    text = ", ".join(parts)
    return text if v.get("evidence") else f"{text} (not evidence)"


def rich_table(report: ClipReport):
    from rich.table import Table

    names = list(report.rows)
    t = Table(title=f"{report.clip}: {report.seconds:.1f} s, {report.size[0]}x{report.size[1]} @ {report.fps:.2f} fps, "
                    f"portrait = frame {report.portrait_index}")
    t.add_column("metric")
    t.add_column("unit")
    for n in names:
        t.add_column(n, justify="right")
    t.add_column("facecast verdict")
    for spec in METRICS:
        vals = [fmt_value(spec, report.rows[n].metrics.get(spec.key)) for n in names]
        v = report.verdicts.get(spec.key, {})
        t.add_row(spec.label, spec.unit, *vals, _verdict_text(v) if v else "")
    return t


def markdown_table(report: ClipReport) -> str:
    names = list(report.rows)
    lines = [f"| metric | unit | {' | '.join(names)} | facecast vs still / loudness / real |",
             "|---|---|" + "---:|" * len(names) + "---|"]
    for spec in METRICS:
        vals = [fmt_value(spec, report.rows[n].metrics.get(spec.key)) for n in names]
        v = report.verdicts.get(spec.key, {})
        verdict = " / ".join(_VERDICT_WORDS.get(str(v.get(k)), "-") for k in ("vs_still", "vs_loudness", "vs_real"))
        if not v.get("evidence"):
            verdict += " (not evidence)"
        lines.append(f"| {spec.label.strip()} | {spec.unit} | {' | '.join(vals)} | {verdict} |")
    return "\n".join(lines)


def summary_rows(reports: list[ClipReport]) -> list[dict]:
    """Per metric: mean of each row over the clips where it is defined, and in how many clips
    facecast is better / same / worse than the loudness baseline and the still floor."""
    out = []
    for spec in METRICS:
        row: dict = {"metric": spec.key, "label": spec.label.strip(), "unit": spec.unit}
        for name in ("real", "still", "loudness", "facecast"):
            vals = [r.rows[name].metrics.get(spec.key) for r in reports if name in r.rows]
            vals = [v for v in vals if v is not None and not np.isnan(v)]
            row[name] = float(np.mean(vals)) if vals else float("nan")  # inf stays inf (PSNR of real)
        for k in ("vs_still", "vs_loudness", "vs_real"):
            counts = {"better": 0, "same": 0, "worse": 0, "n/a": 0}
            for r in reports:
                counts[str(r.verdicts.get(spec.key, {}).get(k, "n/a"))] += 1
            row[k] = counts
        row["evidence_clips"] = sum(bool(r.verdicts.get(spec.key, {}).get("evidence")) for r in reports)
        out.append(row)
    return out


def margin_summary(reports: list[ClipReport]) -> dict[str, dict]:
    """Per comparison ("vs_loudness", "vs_still"): each clip's Margin, the pooled Margin over the
    clips and the count of clips per verdict."""
    out: dict[str, dict] = {}
    for key in (f"vs_{n}" for n in MARGIN_ROWS):
        per = {r.clip: r.margins[key] for r in reports if key in r.margins}
        if not per:
            continue
        series = []
        for r in reports:
            if key in r.margins:
                rows = r.rows
                series.append((rows["facecast"].mouth_open, rows[key[3:]].mouth_open, rows["real"].mouth_open, r.fps))
        counts = {v: sum(m.verdict == v for m in per.values()) for v in ("above", "not separable", "below", "n/a")}
        out[key] = {"clips": per, "pooled": pooled_margin(series), "counts": counts}
    return out


def margin_lines(reports: list[ClipReport]) -> list[str]:
    """Plain-text lines: facecast's lip-sync margin over each baseline, pooled over the clips."""
    lines = []
    for key, m in margin_summary(reports).items():
        c = m["counts"]
        lines.append(f"lip sync (aperture r, lag 0), facecast - {key[3:]}: mean over {len(m['clips'])} clip(s) "
                     f"{m['pooled'].text()}; per clip: {c['above']} above, {c['not separable']} not separable, "
                     f"{c['below']} below (95 % block-bootstrap intervals)")
    return lines


def markdown_summary(reports: list[ClipReport]) -> str:
    lines = ["| metric | unit | real | still | loudness | facecast | facecast vs loudness (better/same/worse) "
             "| vs still | metric is evidence in |", "|---|---|---:|---:|---:|---:|---|---|---|"]
    for row in summary_rows(reports):
        spec = METRIC_BY_KEY[row["metric"]]
        vals = [fmt_value(spec, row[n]) for n in ("real", "still", "loudness", "facecast")]
        c = lambda k: "{better}/{same}/{worse}".format(**row[k])  # noqa: E731
        lines.append(f"| {row['label']} | {row['unit']} | {' | '.join(vals)} | {c('vs_loudness')} | {c('vs_still')} "
                     f"| {row['evidence_clips']}/{len(reports)} clips |")
    return "\n".join(lines)


def markdown_margins(reports: list[ClipReport]) -> str:
    """Table of facecast's lip-sync margins (aperture r at lag 0) with 95 % intervals."""
    summary = margin_summary(reports)
    if not summary:
        return ""
    keys = list(summary)
    lines = ["| clip | " + " | ".join(f"facecast - {k[3:]}" for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for r in reports:
        lines.append(f"| {r.clip} | " + " | ".join(summary[k]["clips"][r.clip].text() if r.clip in summary[k]["clips"]
                                                  else "-" for k in keys) + " |")
    lines.append("| **mean over clips** | " + " | ".join(f"**{summary[k]['pooled'].text()}**" for k in keys) + " |")
    return "\n".join(lines)


def markdown_report(reports: list[ClipReport]) -> str:
    parts = ["### Summary (mean over clips)", "", markdown_summary(reports), ""]
    margins = markdown_margins(reports)
    if margins:
        parts += ["### Lip-sync margins (aperture r at lag 0, 95 % block-bootstrap intervals)", "", margins, ""]
    for r in reports:
        parts += [f"### {r.clip} ({r.seconds:.1f} s, {r.size[0]}x{r.size[1]} @ {r.fps:.2f} fps, portrait = frame "
                  f"{r.portrait_index})", ""]
        if r.notes:
            parts += [f"- {n}" for n in r.notes] + [""]
        parts += [markdown_table(r), ""]
    return "\n".join(parts)


def write_json(reports: list[ClipReport], path: Path, machine: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine or machine_info(), "clips": [r.to_json() for r in reports],
            "summary": [{k: (v if not (isinstance(v, float) and not math.isfinite(v)) else None) for k, v in row.items()}
                        for row in summary_rows(reports)],
            "lipsync_margins": {k: {"pooled": m["pooled"].to_json(), "counts": m["counts"]}
                                for k, m in margin_summary(reports).items()}}
    path.write_text(json.dumps(data, indent=1))


# -- plots ----------------------------------------------------------------------------------

_SHEET_COLS = 6
_THUMB = 128


def _sheet_indices(clip: Clip) -> list[int]:
    """Frames for the contact sheet: in each of 6 equal stretches, the frame where the real mouth
    is widest open (shows the mouth at work)."""
    ap = face_mod.mouth_metrics(clip.points)["mouth_open"]
    ap = np.where(np.isfinite(ap), ap, -1)
    edges = np.linspace(0, clip.num_frames, _SHEET_COLS + 1).round().astype(int)
    return [int(a + np.argmax(ap[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _crop_box(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    H, W = shape
    if not np.isfinite(points).all():
        return 0, 0, W, H
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.3
    s = min(s, W, H)
    bx = int(round(min(max(cx - s / 2, 0), W - s)))
    by = int(round(min(max(cy - s / 2, 0), H - s)))
    return bx, by, bx + int(s), by + int(s)


def _thumb(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    from PIL import Image

    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
    return np.asarray(Image.fromarray(crop).resize((_THUMB, _THUMB), Image.Resampling.BILINEAR))


def write_plots(report: ClipReport, clip: Clip, plot_dir: Path) -> list[str]:
    """<clip>_aperture.png (mouth opening over time, every row, with the loudness envelope) and
    <clip>_sheet.png (face crops of each row at the same 6 moments). Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    t = np.arange(clip.num_frames) / clip.fps
    fig, ax = plt.subplots(figsize=(max(8, min(24, clip.seconds * 0.8)), 4.0), dpi=100)
    ax.fill_between(t, 0, clip.energy * 0.35, color="0.85", label="speech loudness (scaled)", step="mid")
    styles = {"real": ("k", 2.0, "-"), "still": ("0.5", 1.0, ":"), "loudness": ("tab:blue", 1.2, "--"),
              "facecast": ("tab:red", 1.5, "-")}
    for name, row in report.rows.items():
        if row.mouth_open is None:
            continue
        c, lw, ls = styles.get(name, ("tab:green", 1.0, "-"))
        ap = row.mouth_open[: clip.num_frames]
        r = row.metrics.get("aperture_corr", float("nan"))
        ax.plot(t[: len(ap)], ap, color=c, lw=lw, ls=ls, label=f"{name} (r={r:.2f})" if np.isfinite(r) else name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening (IOD)")
    ax.set_title(f"{report.clip}: mouth opening, real vs generated")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=5, frameon=False)
    ax.set_xlim(0, max(t[-1], 1e-3))
    fig.tight_layout()
    p = plot_dir / f"{report.clip}_aperture.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(str(p))

    names = [n for n in report.rows if report.rows[n].thumbs]
    if names:
        label_w, pad = 80, 2
        cols = max(len(report.rows[n].thumbs) for n in names)
        sheet = Image.new("RGB", (label_w + cols * (_THUMB + pad), len(names) * (_THUMB + pad)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for r_i, n in enumerate(names):
            y = r_i * (_THUMB + pad)
            draw.text((4, y + _THUMB // 2 - 6), n, fill=(0, 0, 0))
            for c_i, th in enumerate(report.rows[n].thumbs):
                sheet.paste(Image.fromarray(th), (label_w + c_i * (_THUMB + pad), y))
        p = plot_dir / f"{report.clip}_sheet.png"
        sheet.save(p)
        paths.append(str(p))
    return paths
