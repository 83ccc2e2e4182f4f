"""This speaker's own mouth model, learned from the video's own speech in closed form: a ridge
regression from what the sound says (dubbing.cues: log-mel windows, the recognised phones'
classes, the phone-driven motion model's mouth, each +-0.2 s around the frame) to this person's
lip gap and width, fitted on the scanned part of the video (its sound track and its tracked
mouth). It learns this person's timing (the window reaches both ways, so the sound-to-mouth
offset of this speaker and recording is in the weights), articulation and opening range; the
motion block is the phone model itself, so the regression is also the fusion of the two, with
weights fitted rather than chosen.

The model is an ensemble (MEMBERS): each of four cue sets regressed twice, linearly and with a
Gaussian kernel (dubbing.ridge), the members' held-out predictions averaged. How much shrinkage
each member takes is chosen by cross-validation on the video's own speech (FOLDS contiguous
folds: each fold is predicted by a model that has not heard it); the model runs when it beats
the calibrated phone model on those held-out folds by MIN_GAIN r. 1-3 s of CPU (no network to
train; the twin's mouth model took 1-3 minutes per training here).

    OwnSpeech     the scanned part of the video: motion params of its own speech, phone classes,
                  loudness, speech/silence, the tracked landmarks, its 16 kHz sound
    fit_learned   OwnSpeech -> (LearnedMouth | None, LearnedFit)
    LearnedMouth  targets(segment, speech, params) -> (gap, width) per frame of the new speech
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..segments import Segment
from ..types import ANALYSIS_RATE, Speech
from .calibrate import Calibration, mouth_shape
from .cues import feature_blocks, log_mel, phone_coverage
from .ridge import KernelRidge, Ridge, fit_kernel_ridge, fit_ridge, folds, kernel_out_of_fold, out_of_fold

log = logging.getLogger(__name__)

MIN_SPEECH_S = 10.0
"""Least speech (voiced seconds with the face tracked) in the scanned part to learn from."""
FOLDS = 5
"""Contiguous folds of the own speech the choice of cues and shrinkage is scored on."""
ALPHAS = (0.3, 1.0, 3.0, 10.0)
"""Candidate ridge penalties (per frame, on standardised cues)."""
KERNEL_ALPHAS = (3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1)
"""Candidate kernel ridge penalties (per frame, on the Gaussian kernel's function norm)."""
CUE_SETS: tuple[tuple[str, ...], ...] = (("sound", "phones", "motion"), ("sound", "motion"), ("phones", "motion"),
                                         ("motion",))
"""The ensemble's members, by cue blocks (dubbing.cues.BLOCKS); the phone model's own mouth is in
each. Their mean beat the best member picked on held-out folds on the 12 pairs of 4 Obama clips
(link-1 r at the best of lags -1..+1: 0.496 vs 0.476 on the styletalk pairs, 0.460 vs 0.435 on
all 12): 16-26 s of speech picks noisily."""
LEARNERS = {"linear": (out_of_fold, fit_ridge, ALPHAS), "kernel": (kernel_out_of_fold, fit_kernel_ridge, KERNEL_ALPHAS)}
"""How each member is regressed: (held-out predictions, fit, candidate penalties)."""
MEMBERS: tuple[tuple[str, tuple[str, ...]], ...] = tuple((lrn, cues) for lrn in LEARNERS for cues in CUE_SETS)
"""The ensemble: every cue set, linearly and with the kernel. The kernel members see what a
linear map cannot (the sound's cues combine: a loud open vowel is not a loud closure plus a quiet
open vowel); with them link 1 on the Obama pairs rose by 0.014 (best of lags -1..+1, three-clip
pairs) and 0.035 (obama_en pairs), where kernel members alone gave +0.011 / +0.05
(docs/quality.md, fourth round)."""
MIN_GAIN = 0.02
"""The learned mouth must beat the calibrated phones on the held-out folds by this much r to run."""
TAIL_S = 0.5
"""Seconds of the previous segment's sound kept as the next one's past context."""
SMOOTH_S = (0.0, 0.02, 0.035, 0.05)
"""Candidate widths (Gaussian sigma, s) of the temporal smoothing of the predictions, chosen on
the held-out folds: how smooth this speaker's mouth is against what the cues say."""
SMOOTH_KEEP = 8
"""Frames of the previous segment's predictions kept to smooth across the cut."""
AHEAD_S = 0.3
"""Seconds of the next segment read as a segment's future context (the cues reach CONTEXT_S)."""


@dataclass
class OwnSpeech:
    """The scanned part of the video as training data, per frame from frame 0: ``params`` [n, P]
    the motion model on its own speech, ``phones`` [n, classes] (cues.phone_coverage),
    ``energy`` [n] loudness, ``voiced`` [n], ``points`` [n, 478, 3] tracked landmarks (NaN where
    not detected); ``audio`` float32 16 kHz from the video's start; ``fps``."""

    params: np.ndarray
    points: np.ndarray
    voiced: np.ndarray
    audio: np.ndarray
    fps: float
    phones: np.ndarray
    energy: np.ndarray


@dataclass
class LearnedFit:
    """What the fit found (for the report and docs): held-out aperture r of the learned model
    (``r_learned``, the ensemble) and of the calibrated phone model on the same frames
    (``r_phones``), the held-out r of each member (``r_cues``, "learner: cue + cue"), the smoothing chosen
    (``smooth_s``, Gaussian sigma in s), seconds of speech
    learned from, seconds to learn; ``used`` and why not."""

    used: bool = False
    why: str = ""
    speech_s: float = 0.0
    r_learned: float = float("nan")
    r_phones: float = float("nan")
    r_cues: dict[str, float] = field(default_factory=dict)
    smooth_s: float = 0.0
    seconds: float = 0.0

    def text(self) -> str:
        if not self.used:
            return f"phone-driven mouth ({self.why})"
        return (f"learned mouth ({len(self.r_cues)} linear and kernel ridge models on sound, phone and phone-model "
                f"cues; held-out r "
                f"{self.r_learned:.2f} vs phones {self.r_phones:.2f}; {self.speech_s:.0f} s of the video's speech, "
                f"{self.seconds:.1f} s to learn)")


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


def smooth(z: np.ndarray, sigma: float) -> np.ndarray:
    """z [n, k] smoothed along time by a Gaussian of ``sigma`` frames (0: unchanged), edges held."""
    if sigma <= 0 or len(z) < 2:
        return z
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(z, sigma, axis=0, mode="nearest")


def spread_map(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The linear map (as np.interp's two points, far apart) taking x's mean and spread onto y's."""
    mx, sx = float(np.mean(x)), float(max(np.std(x), 1e-9))
    my, sy = float(np.mean(y)), float(np.std(y))
    return (mx - 10 * sx, mx + 10 * sx), (my - 10 * sy, my + 10 * sy)


@dataclass(frozen=True)
class Member:
    """One model of the ensemble: its cue blocks, its gap and width models (linear or kernel ridge),
    and the mean and spread of its held-out predictions (gap, width), which put every member on
    one scale."""

    cues: tuple[str, ...]
    gap: Ridge | KernelRidge
    width: Ridge | KernelRidge
    centre: tuple[float, float]
    spread: tuple[float, float]

    def z(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """[n, 2] (gap, width) predictions in the member's standard units."""
        X = np.concatenate([blocks[c] for c in self.cues], 1)
        raw = np.stack([self.gap.predict(X)[:, 0], self.width.predict(X)[:, 0]], -1)
        return (raw - np.asarray(self.centre)) / np.asarray(self.spread)


class LearnedMouth:
    """Per segment of the new speech: this speaker's lip gap and width from the cues (module
    docstring), the mean of the members' predictions mapped onto the mean and spread of this
    speaker's own gap and width."""

    def __init__(self, members: list[Member], gap_map, width_map, own_mel: np.ndarray, smooth_s: float = 0.0):
        self.members = members
        self.gap_map, self.width_map = gap_map, width_map
        self.own_mel = own_mel
        self.smooth_s = smooth_s
        self.reset()

    def reset(self) -> None:
        """Forget the previous job's sound (its last segment's tail, its mean spectrum)."""
        self._tail, self._tail_end, self._mel_mean = np.zeros(0, np.float32), None, None
        self._z_tail = np.zeros((0, 2))  # the previous segment's last predictions (for the smoothing)

    def listen(self, audio: np.ndarray) -> None:
        """Take the new recording's mean spectrum (its level and microphone) from ``audio`` (16
        kHz, e.g. its first minute) before the first segment; without it, the first segment's."""
        if len(audio) >= ANALYSIS_RATE // 2:
            self._mel_mean = log_mel(audio).mean(0)

    def z(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """[n, 2] the members' mean prediction (standard units) from cue blocks (cues.feature_blocks)."""
        return np.mean([m.z(blocks) for m in self.members], axis=0)

    def to_mouth(self, z: np.ndarray) -> np.ndarray:
        """float32 [n, 2] (gap, width) in IOD of predictions ``z`` [n, 2] (standard units)."""
        g = np.maximum(np.interp(z[:, 0], *self.gap_map), 0.0)
        w = np.maximum(np.interp(z[:, 1], *self.width_map), 0.0)
        return np.stack([g, w], -1).astype(np.float32)

    def targets(self, seg: Segment, speech: Speech, params: np.ndarray,
                ahead: tuple[Segment, Speech, np.ndarray] | None = None) -> np.ndarray:
        """(gap, width) [n, 2] for the frames of ``seg`` (``speech`` its analysis, ``params`` the
        motion model's, at the calibrated lead). The sound before it (up to TAIL_S, when the
        segments are contiguous) is its past context; ``ahead``: the next segment, its speech and
        params, whose first AHEAD_S are its future context (without it the cues near the
        segment's end hold their last value)."""
        audio, start = seg.analysis.astype(np.float32), seg.start
        contiguous = self._tail_end is not None and abs(self._tail_end - seg.start) < 1e-6
        if contiguous and len(self._tail):
            audio = np.concatenate([self._tail, audio])
            start = seg.start - len(self._tail) / ANALYSIS_RATE
        keep = int(TAIL_S * ANALYSIS_RATE)
        self._tail = audio[-keep:].copy()
        self._tail_end = start + len(audio) / ANALYSIS_RATE
        # The sound cues are relative to the new recording's mean spectrum, as the fit's were to the
        # video's own. One mean for the whole job: a mean updated per segment moved every
        # segment's cues by a different offset (link-1 r 0.48 -> 0.44 on the styletalk pairs).
        if self._mel_mean is None:
            self._mel_mean = log_mel(seg.analysis).mean(0) if len(seg.analysis) >= 400 else self.own_mel
        mean = self._mel_mean
        n = seg.num_frames
        params, phones = params[:n], phone_coverage(speech)[:n]
        energy, voiced = speech.energy[:n], speech.voiced[:n]
        if ahead is not None and ahead[0].first_frame == seg.first_frame + n:
            nseg, nspeech, nparams = ahead
            k = min(int(np.ceil(AHEAD_S * speech.fps)), nseg.num_frames)
            audio = np.concatenate([audio, nseg.analysis[: int(AHEAD_S * ANALYSIS_RATE)].astype(np.float32)])
            params = np.concatenate([params, nparams[:k]])
            phones = np.concatenate([phones, phone_coverage(nspeech)[:k]])
            energy = np.concatenate([energy, nspeech.energy[:k]])
            voiced = np.concatenate([voiced, nspeech.voiced[:k]])
        blocks = feature_blocks(audio, start, seg.first_frame, speech.fps, params, phones, energy, voiced,
                                mel_mean=mean)
        z = self.z(blocks)
        past = self._z_tail if contiguous else np.zeros((0, 2))
        self._z_tail = z[max(n - SMOOTH_KEEP, 0):n]
        z = smooth(np.concatenate([past, z]), self.smooth_s * speech.fps)[len(past):len(past) + n]
        return self.to_mouth(z)


def fit_learned(own: OwnSpeech, calibration: Calibration, *, force: bool = False,
                progress: Callable[[float], None] | None = None) -> tuple[LearnedMouth | None, LearnedFit]:
    """The learned mouth for this video (module docstring), or None with the reason. ``force``:
    use it even where it does not beat the phones on the held-out folds. ``progress``: called
    with the share of the fit done (0 ... 1)."""
    t0 = time.perf_counter()
    fit = LearnedFit()
    n = min(len(own.points), len(own.params), len(own.voiced))
    real = mouth_shape(own.points[:n]) if n else np.zeros((0, 2), np.float32)
    voiced = np.asarray(own.voiced[:n], bool)
    tracked = np.isfinite(real).all(1)
    fit.speech_s = float((voiced & tracked).sum() / own.fps)
    if fit.speech_s < MIN_SPEECH_S:
        fit.why = (f"{fit.speech_s:.1f} s of the video's own speech with the face tracked; the learned mouth needs "
                   f"{MIN_SPEECH_S:g}")
        return None, fit
    params = _shift(np.asarray(own.params[:n], np.float32), calibration.lag_frames)  # as animate() will pass them
    audio = own.audio[: int(np.ceil(n / own.fps * ANALYSIS_RATE)) + ANALYSIS_RATE // 2]
    own_mel = log_mel(audio).mean(0)
    blocks = feature_blocks(audio, 0.0, 0, own.fps, params, own.phones, own.energy, voiced, mel_mean=own_mel)
    Y = real[tracked].astype(np.float64)
    fit.r_phones = _corr(calibration.target(params)[tracked, 0], Y[:, 0])
    held = folds(len(Y), FOLDS)
    members, zs = [], []
    for k, (learner, cues) in enumerate(MEMBERS):
        held_out_fn, fit_fn, alphas = LEARNERS[learner]
        X = np.concatenate([blocks[c][tracked] for c in cues], 1)
        oof = held_out_fn(X, Y, alphas, held)
        r_gap = {a: _corr(p[:, 0], Y[:, 0]) for a, p in oof.items()}
        a_gap = max(r_gap, key=lambda a: np.nan_to_num(r_gap[a], nan=-2.0))
        a_width = max(oof, key=lambda a: np.nan_to_num(_corr(oof[a][:, 1], Y[:, 1]), nan=-2.0))
        fit.r_cues[f"{learner}: " + " + ".join(cues)] = r_gap[a_gap]
        held_out = np.stack([oof[a_gap][:, 0], oof[a_width][:, 1]], -1)
        centre, spread = held_out.mean(0), np.maximum(held_out.std(0), 1e-9)
        zs.append((held_out - centre) / spread)
        members.append((cues, fit_fn, X, a_gap, a_width, tuple(map(float, centre)), tuple(map(float, spread))))
        if progress:
            progress((k + 1) / (len(MEMBERS) + 1))
    z = np.mean(zs, axis=0)  # the ensemble's held-out predictions
    # (the held-out frames are contiguous runs of the tracked frames: smoothing them is the dub's)
    r_smooth = {s_: _corr(smooth(z, s_ * own.fps)[:, 0], Y[:, 0]) for s_ in SMOOTH_S}
    fit.smooth_s = max(r_smooth, key=lambda s_: np.nan_to_num(r_smooth[s_], nan=-2.0))
    z = smooth(z, fit.smooth_s * own.fps)
    fit.r_learned = _corr(z[:, 0], Y[:, 0])
    if not np.isfinite(fit.r_learned):
        fit.why = "the video's own mouth does not move with its speech (nothing to learn)"
        fit.seconds = time.perf_counter() - t0
        return None, fit
    base = fit.r_phones if np.isfinite(fit.r_phones) else -1.0
    if not force and fit.r_learned < base + MIN_GAIN:
        fit.why = (f"the learned mouth did not beat the phones on held-out speech of this video "
                   f"(r {fit.r_learned:.2f} vs {base:.2f})")
        fit.seconds = time.perf_counter() - t0
        return None, fit
    # Ridge shrinks, and a mean of members spreads less than each: linear maps from the held-out
    # ensemble onto this speaker's own gaps and widths (mean and spread) make the dubbed mouth move
    # as much as this person's does. (Quantile maps, as the calibration uses, cost 0.01 r: they
    # flatten the ends.)
    gap_map, width_map = spread_map(z[:, 0], Y[:, 0]), spread_map(z[:, 1], Y[:, 1])
    model = LearnedMouth([Member(cues, fit_fn(X, Y[:, :1], a_gap), fit_fn(X, Y[:, 1:], a_width), centre, spread)
                          for cues, fit_fn, X, a_gap, a_width, centre, spread in members], gap_map, width_map, own_mel,
                         fit.smooth_s)
    if progress:
        progress(1.0)
    fit.used, fit.seconds = True, time.perf_counter() - t0
    log.info("learned mouth: %s; held-out r per cue set: %s", fit.text(),
             {k: round(v, 3) for k, v in fit.r_cues.items()})
    return model, fit

