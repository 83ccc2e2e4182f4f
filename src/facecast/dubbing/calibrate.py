"""This speaker's mouth, measured from the video: the closed and open lip gap, the lip width,
and (where the video has speech) how the motion model's mouth maps onto this person's.

    MouthShape      the 2 numbers a mouth is matched by: inner-lip gap and lip width, in IOD
    SpeakerStats    running statistics of the tracked mouth (closed gap, neutral width, range)
    Calibration     motion parameters -> this speaker's target MouthShape; fitted by
                    ``fit_calibration`` from the video's own speech and mouth
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..types import MOTION_INDEX

log = logging.getLogger(__name__)

# The rig's geometry (render.rig): a unit of jaw_open drops the lower lip 0.40 IOD, a unit of
# lip_spread moves each mouth corner 0.09 IOD out, a unit of lip_round 0.16 IOD in.
RIG_JAW_IOD = 0.40
RIG_SPREAD_IOD = 0.18
RIG_ROUND_IOD = 0.32


def mouth_shape(points: np.ndarray) -> np.ndarray:
    """float32 [N, 2] (inner-lip gap, outer lip width) in IOD of landmarks [N, 478, 3]."""
    from ..face import mouth_metrics

    m = mouth_metrics(points)
    return np.stack([m["mouth_open"], m["mouth_width"]], -1).astype(np.float32)


class SpeakerStats:
    """Running statistics of the tracked mouth shapes (a bounded reservoir of frames)."""

    def __init__(self, size: int = 4000, seed: int = 0):
        self.size = size
        self._shapes = np.zeros((0, 2), np.float32)
        self._seen = 0
        self._rng = np.random.default_rng(seed)
        self._cache: tuple[float, float, float] | None = None

    def add(self, shape: np.ndarray) -> None:
        """shape: [2] (gap, width) of one frame."""
        if not np.isfinite(shape).all():
            return
        self._seen += 1
        self._cache = None
        if len(self._shapes) < self.size:
            self._shapes = np.concatenate([self._shapes, shape[None].astype(np.float32)])
        else:  # reservoir sampling: every frame seen has the same chance to be kept
            k = int(self._rng.integers(0, self._seen))
            if k < self.size:
                self._shapes[k] = shape

    @property
    def count(self) -> int:
        return len(self._shapes)

    def summary(self) -> tuple[float, float, float]:
        """(closed gap, neutral width, open gap): the 5th percentile of the gap, the median width
        of near-closed frames, the 95th percentile of the gap. Defaults of a typical face
        (0.0, 0.80, 0.15 IOD) until frames are seen."""
        if self._cache is None:
            if len(self._shapes) < 5:
                self._cache = (0.0, 0.80, 0.15)
            else:
                gap, width = self._shapes[:, 0], self._shapes[:, 1]
                closed = float(np.percentile(gap, 5))
                near = width[gap <= closed + 0.03]
                self._cache = (closed, float(np.median(near if near.size >= 3 else width)),
                               float(max(np.percentile(gap, 95), closed + 0.05)))
        return self._cache


@dataclass(frozen=True)
class Calibration:
    """Motion parameters -> this speaker's target mouth.

    Without a fit: gap = closed + gap_gain * jaw_open, width = neutral + width_gain *
    (lip_spread - 1.8 lip_round), in IOD (the rig's geometry on the measured closed gap and
    neutral width). Fitted from the video's own speech (``fitted``): quantile maps, the model's
    jaw opening -> this speaker's gap (``gap_map``: (model quantiles, real quantiles)) and its
    spread -> this speaker's width (``width_map``), so the dubbed mouth opens as often and as wide
    as this person's does; ``lag_frames``: the model's mouth is shown this many frames later
    (negative: earlier) to match this person's mouth-to-sound timing. ``r``: the correlation of
    the model's and the real opening at that lag."""

    closed: float
    neutral: float
    gap_gain: float = RIG_JAW_IOD
    width_gain: float = RIG_SPREAD_IOD
    lag_frames: int = 0
    fitted: bool = False
    r: float = float("nan")
    gap_map: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    width_map: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    rest_gap: float | None = None

    def target(self, params: np.ndarray) -> np.ndarray:
        """float32 [n, 2] target (gap, width) for motion params [n, P]. Where the lips are not
        pressed together (p/b/m), the gap is at least this speaker's gap in silence
        (``rest_gap``: many people rest with their lips apart)."""
        jaw, side = model_mouth(params)
        gap = _apply(self.gap_map, jaw) if self.gap_map else self.closed + self.gap_gain * jaw
        if self.rest_gap is not None:
            close = np.clip(params[:, MOTION_INDEX["lip_close"]], 0, 1)
            gap = np.maximum(gap, self.rest_gap * (1 - close))
        width = _apply(self.width_map, side) if self.width_map else self.neutral + self.width_gain * side
        return np.stack([gap, width], -1).astype(np.float32)


def model_mouth(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(effective jaw opening, lip spread less rounding) [n] of motion params [n, P]: the two
    numbers of the motion model's mouth that the target shape is made of."""
    close = np.maximum(params[:, MOTION_INDEX["lip_close"]], 0.85 * params[:, MOTION_INDEX["labiodental"]])
    jaw = params[:, MOTION_INDEX["jaw_open"]] * (1 - np.clip(close, 0, 1))
    side = params[:, MOTION_INDEX["lip_spread"]] - (RIG_ROUND_IOD / RIG_SPREAD_IOD) * params[:, MOTION_INDEX["lip_round"]]
    return jaw, side


def _apply(m: tuple[tuple[float, ...], tuple[float, ...]], x: np.ndarray) -> np.ndarray:
    return np.interp(x, np.asarray(m[0]), np.asarray(m[1]))


def quantile_map(x: np.ndarray, y: np.ndarray, q: np.ndarray = np.linspace(2, 98, 25)) -> tuple[tuple, tuple]:
    """Monotone map taking the distribution of x onto that of y: (quantiles of x made strictly
    increasing, quantiles of y)."""
    qx = np.percentile(x, q)
    qy = np.percentile(y, q)
    qx = qx + np.arange(len(qx)) * 1e-6  # ties (many closed frames) -> strictly increasing
    qx = np.maximum.accumulate(qx)
    return tuple(float(v) for v in qx), tuple(float(v) for v in np.maximum.accumulate(qy))


def default_calibration(stats: SpeakerStats) -> Calibration:
    closed, neutral, opened = stats.summary()
    # The motion model's open vowels reach jaw ~0.75: let them reach this speaker's open gap.
    gain = float(np.clip((opened - closed) / 0.6, 0.08, RIG_JAW_IOD))
    return Calibration(closed, neutral, gap_gain=gain)


def fit_calibration(model_params: np.ndarray, real_shape: np.ndarray, voiced: np.ndarray, stats: SpeakerStats,
                    max_lag: int = 3) -> Calibration:
    """Fit the model's mouth (params [n, P] from the video's own speech) to the tracked real
    mouth (real_shape [n, 2], NaN where untracked): the lag of best correlation, then quantile
    maps over the frames both have. Falls back to ``default_calibration`` with less than 2 s of
    speech or no correlation (r < 0.2)."""
    base = default_calibration(stats)
    ok = np.isfinite(real_shape).all(1)
    if ok.sum() < 50 or (voiced & ok).sum() < 50:
        return base
    jaw, side = model_mouth(model_params)
    gap, width = real_shape[:, 0], real_shape[:, 1]
    best, r0 = (-2.0, 0), -2.0
    n = len(jaw)
    for lag in range(-max_lag, max_lag + 1):  # real[t] vs model[t - lag]: + = real mouth later
        a = np.arange(max(0, lag), min(n, n + lag))
        m = ok[a]
        x, y = jaw[a - lag][m], gap[a][m]
        if m.sum() < 50 or x.std() < 1e-6 or y.std() < 1e-6:
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        if lag == 0:
            r0 = r
        if r > best[0]:
            best = (r, lag)
    r, lag = best
    if lag and r0 > -1 and r < r0 + 0.02:  # a shift must earn its place: noise picks the edges
        r, lag = r0, 0
    if r < 0.2:
        log.info("calibration: the model's mouth does not follow this video's (r %.2f); rig defaults", r)
        return base
    a = np.arange(max(0, lag), min(n, n + lag))
    m = ok[a]
    closed, neutral, _ = stats.summary()
    silent = ok & ~voiced[:n]
    rest = float(np.percentile(gap[silent], 25)) if silent.sum() >= 25 else None
    cal = Calibration(closed, neutral, lag_frames=int(lag), fitted=True, r=r,
                      gap_map=quantile_map(jaw[a - lag][m], gap[a][m]),
                      width_map=quantile_map(side[a - lag][m], width[a][m]), rest_gap=rest)
    log.info("calibration from the video's speech: gap quantiles %s, width %s, rest gap %s IOD, lag %+d frames "
             "(r %.2f)", np.round(cal.gap_map[1][::6], 3), np.round(cal.width_map[1][::6], 3),
             "-" if rest is None else f"{rest:.3f}", cal.lag_frames, r)
    return cal
