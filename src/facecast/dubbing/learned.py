"""This speaker's own audio-to-mouth model, learned from the video's own speech (the twin's
mouth model, facecast.twin.mouth), fused with the phone-driven motion model.

The video's sound track and its tracked mouth are training pairs: audio features around each
frame -> this person's lip landmarks. A model fitted to them knows this person's timing and
articulation, which the generic phone-driven model does not; the phone model knows words the
video never says. Measured on the styletalk Obama clips (docs/quality.md), each is right where
the other is wrong, so their opening signals are averaged (in standard units) with a weight
chosen on a held-out part of the video's own speech, and mapped onto this speaker's lip gap and
width.

    OwnSpeech     the scanned part of the video: motion params of its own speech, the tracked
                  landmarks, speech/silence, its 16 kHz sound
    fit_learned   OwnSpeech -> (LearnedMouth | None, LearnedFit): fold = train on the first
                  2/3 of the speech, score learned / phones / fused on the last 1/3; then the
                  model trained on all of it. None when the video has too little speech or the
                  fusion does not beat the phones on the held-out part
    LearnedMouth  targets(segment, params) -> (gap, width) per frame of the new speech
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..landmarks import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS
from ..segments import Segment
from ..types import ANALYSIS_RATE
from .calibrate import Calibration, model_mouth, quantile_map

log = logging.getLogger(__name__)

MIN_SPEECH_S = 10.0
"""Least speech (voiced seconds with the face tracked) in the scanned part to learn from."""
HOLD_OUT = 1 / 3
"""Share of the own speech (its end) the fold holds out to choose the fusion and its maps."""
WEIGHTS = (0.0, 0.25, 0.5, 0.65, 0.8, 1.0)
"""Candidate weights of the learned signal in the fusion (1 - weight: the phone model's)."""
MIN_GAIN = 0.02
"""The fusion must beat the phones alone on the held-out part by this much r to be used."""
TAIL_S = 0.5
"""Seconds of the previous segment's sound kept as the next one's past context."""


def learn_config():
    """The mouth model's config for dub: the twin's, with 400 steps and 2 members (estimated ~30 s
    per training on 2 free cores; 83-98 s measured at load 10-14; the twin's 800 x 3 scored within
    +-0.05 of it on these clips)."""
    from ..twin.mouth import MouthConfig

    return MouthConfig(steps=400, ensemble=2)


def face_mouth(points: np.ndarray) -> np.ndarray:
    """float32 [N, 53, 2]: the twin's MOUTH_POINTS of landmarks [N, 478, 3] in the face's own
    frame (x along the eye line, y down the face, origin between the eyes), in IOD; NaN rows stay
    NaN. The inner-lip gap of these (twin.mouth.aperture) is face.mouth_metrics' mouth_open."""
    from ..twin.points import MOUTH_POINTS

    xy = np.asarray(points, np.float64)[:, :, :2]
    r = xy[:, list(RIGHT_EYE_CORNERS)].mean(1)
    lft = xy[:, list(LEFT_EYE_CORNERS)].mean(1)
    ex = lft - r
    u = np.linalg.norm(ex, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ex = ex / u[:, None]
        ey = np.stack([-ex[:, 1], ex[:, 0]], -1)
        q = xy[:, list(MOUTH_POINTS)] - ((r + lft) / 2)[:, None]
        out = np.stack([(q * ex[:, None]).sum(-1), (q * ey[:, None]).sum(-1)], -1) / u[:, None, None]
    return out.astype(np.float32)


@dataclass
class OwnSpeech:
    """The scanned part of the video as training data: ``params`` [n, P] the motion model on its
    own speech, ``points`` [n, 478, 3] tracked landmarks (NaN where not detected), ``voiced``
    [n], ``audio`` float32 16 kHz from the video's start, ``fps``."""

    params: np.ndarray
    points: np.ndarray
    voiced: np.ndarray
    audio: np.ndarray
    fps: float


@dataclass
class LearnedFit:
    """What the fit found (for the report and docs): held-out aperture r of the learned model,
    of the phone model (at the calibrated lag) and of their fusion at ``weight``; seconds of
    speech learned from; training time; ``used`` and why not."""

    used: bool = False
    why: str = ""
    speech_s: float = 0.0
    weight: float = float("nan")
    r_learned: float = float("nan")
    r_phones: float = float("nan")
    r_fused: float = float("nan")
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.used:
            return f"phone-driven mouth ({self.why})"
        return (f"learned + phone mouth (weight {self.weight:.2f} learned; held-out r {self.r_fused:.2f}, "
                f"learned {self.r_learned:.2f}, phones {self.r_phones:.2f}; {self.speech_s:.0f} s of the video's "
                f"speech, {self.seconds:.0f} s to learn)")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10 or a[ok].std() < 1e-9 or b[ok].std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """x delayed by ``lag`` frames (negative: advanced), edges held."""
    if lag == 0 or len(x) == 0:
        return x
    if lag > 0:
        return np.concatenate([np.repeat(x[:1], lag, 0), x[:-lag]])[: len(x)]
    return np.concatenate([x[-lag:], np.repeat(x[-1:], -lag, 0)])[: len(x)]


class Standard:
    """x -> (x - mean) / std with the mean and std of a sample."""

    def __init__(self, sample: np.ndarray):
        s = sample[np.isfinite(sample)]
        self.mean = float(s.mean()) if s.size else 0.0
        self.std = float(max(s.std(), 1e-6)) if s.size else 1.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


class LearnedMouth:
    """Per segment of the new speech: the learned model's lip gap and width fused with the phone
    model's (see the module docstring), on this speaker's scale."""

    def __init__(self, model, weight: float, scales: tuple[Standard, ...], gap_map, width_map, fps: float):
        self.model, self.weight, self.fps = model, weight, fps
        self.z_gap, self.z_jaw, self.z_width, self.z_side = scales
        self.gap_map, self.width_map = gap_map, width_map
        self._tail = np.zeros(0, np.float32)
        self._tail_end: float | None = None

    def predict(self, audio: np.ndarray, start: float, first_frame: int, n: int) -> np.ndarray:
        """float32 [n, 2] learned (gap, width) of frames first_frame.. (shown at i / fps) from
        ``audio`` (16 kHz, starting at ``start`` s)."""
        import torch

        from ..twin.features import log_mel, window_features
        from ..twin.mouth import aperture, mouth_width

        if len(audio) < self.model.config.win:
            audio = np.concatenate([audio, np.zeros(self.model.config.win - len(audio), np.float32)])
        with torch.no_grad():
            mel = log_mel(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), self.model.config)
            times = (torch.arange(n, dtype=torch.float64) + first_frame) / self.fps - start
            pts = self.model(window_features(mel, times.float(), self.model.config)[None])[0].numpy()
        return np.stack([aperture(pts), mouth_width(pts)], -1).astype(np.float32)

    def fuse(self, learned: np.ndarray, params: np.ndarray) -> np.ndarray:
        """(gap, width) [n, 2] of the fusion: learned [n, 2] and the phone model's params [n, P]
        (already shifted by the calibrated lag) in standard units, weighted, mapped onto this
        speaker's gap and width."""
        jaw, side = model_mouth(params)
        w = self.weight
        g = w * self.z_gap(learned[:, 0]) + (1 - w) * self.z_jaw(jaw)
        s = w * self.z_width(learned[:, 1]) + (1 - w) * self.z_side(side)
        return np.stack([np.interp(g, *self.gap_map), np.interp(s, *self.width_map)], -1).astype(np.float32)

    def targets(self, seg: Segment, params: np.ndarray) -> np.ndarray:
        """(gap, width) [n, 2] for the frames of ``seg``; the sound before it (up to TAIL_S, when
        the segments are contiguous) is its past context."""
        audio, start = seg.analysis.astype(np.float32), seg.start
        if self._tail_end is not None and abs(self._tail_end - seg.start) < 1e-6 and len(self._tail):
            audio = np.concatenate([self._tail, audio])
            start = seg.start - len(self._tail) / ANALYSIS_RATE
        keep = int(TAIL_S * ANALYSIS_RATE)
        self._tail = audio[-keep:].copy()
        self._tail_end = start + len(audio) / ANALYSIS_RATE
        learned = self.predict(audio, start, seg.first_frame, seg.num_frames)
        return self.fuse(learned, params[: seg.num_frames])


def fit_learned(own: OwnSpeech, calibration: Calibration, *, force: bool = False, device: str = "cpu",
                seed: int = 0) -> tuple[LearnedMouth | None, LearnedFit]:
    """The learned mouth for this video (see the module docstring), or None with the reason.
    ``force``: use the fusion (its best weight above 0) even where it does not beat the phones."""
    from ..twin.mouth import aperture, mouth_width, predict_mouth, train_mouth

    t0 = time.perf_counter()
    fit = LearnedFit()
    mouth = face_mouth(own.points)
    n = min(len(mouth), len(own.params), len(own.voiced))
    mouth, voiced = mouth[:n], own.voiced[:n]
    tracked = np.isfinite(mouth).all((1, 2))
    fit.speech_s = float((voiced & tracked).sum() / own.fps)
    if fit.speech_s < MIN_SPEECH_S:
        fit.why = f"{fit.speech_s:.1f} s of the video's own speech with the face tracked; the learned mouth needs {MIN_SPEECH_S:g}"
        return None, fit
    audio = own.audio[: int(np.ceil(n / own.fps * ANALYSIS_RATE)) + ANALYSIS_RATE // 2]
    jaw, side = model_mouth(_shift(own.params[:n], calibration.lag_frames))
    real = np.stack([aperture(mouth), mouth_width(mouth)], -1)
    cut = int(n * (1 - HOLD_OUT))
    cfg = learn_config()
    train = mouth.copy()
    train[cut:] = np.nan
    try:
        model, _ = train_mouth([(audio, own.fps, train)], cfg, device=device, seed=seed)
    except ValueError as exc:  # too few labelled runs
        fit.why = f"too little tracked speech to learn from ({exc})"
        return None, fit
    held = predict_mouth(model, audio, own.fps, n)[cut:]
    lh = np.stack([aperture(held), mouth_width(held)], -1)
    rh, ok = real[cut:], tracked[cut:]
    zg, zj, zw, zs = Standard(lh[:, 0]), Standard(jaw[cut:]), Standard(lh[:, 1]), Standard(side[cut:])
    fit.r_learned = _corr(lh[ok, 0], rh[ok, 0])
    fit.r_phones = _corr(jaw[cut:][ok], rh[ok, 0])
    scores = {w: _corr(w * zg(lh[ok, 0]) + (1 - w) * zj(jaw[cut:][ok]), rh[ok, 0]) for w in WEIGHTS}
    scores = {w: r for w, r in scores.items() if np.isfinite(r)}
    if not scores:
        fit.why = "the held-out part of the video's speech has no mouth motion to score"
        return None, fit
    w = max((v for v in scores if v > 0 or not force), key=scores.get, default=None)
    if w is None:
        fit.why = "the learned mouth does not follow the held-out part of the video's speech"
        return None, fit
    fit.weight, fit.r_fused = float(w), float(scores[w])
    base = fit.r_phones if np.isfinite(fit.r_phones) else -1.0
    if not force and (w == 0.0 or fit.r_fused < base + MIN_GAIN):
        fit.why = (f"the learned mouth did not beat the phones on held-out speech of this video "
                   f"(r {fit.r_fused:.2f} vs {base:.2f})")
        fit.seconds = time.perf_counter() - t0
        return None, fit
    g = w * zg(lh[ok, 0]) + (1 - w) * zj(jaw[cut:][ok])
    s = w * zw(lh[ok, 1]) + (1 - w) * zs(side[cut:][ok])
    gap_map, width_map = quantile_map(g, rh[ok, 0]), quantile_map(s, rh[ok, 1])
    # The model used from here on learns from all of the speech (the fold's maps and scales stay:
    # they describe a model on speech it has not heard).
    model, _ = train_mouth([(audio, own.fps, mouth)], cfg, device=device, seed=seed)
    fit.used, fit.seconds = True, time.perf_counter() - t0
    log.info("learned mouth: %s", fit.text())
    return LearnedMouth(model, float(w), (zg, zj, zw, zs), gap_map, width_map, own.fps), fit
