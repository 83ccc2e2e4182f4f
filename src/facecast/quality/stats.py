"""Lip-sync margins with intervals: a difference of correlations and its paired moving-block
bootstrap (plain numpy; nothing here knows about faces).

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

from dataclasses import dataclass

import numpy as np

__all__ = ["Margin", "corr_margin", "pooled_margin", "MARGIN_BLOCK_S", "MARGIN_BOOTSTRAPS", "MARGIN_MIN_BLOCKS"]

MARGIN_BLOCK_S = 1.0
"""Block length of the lip-sync margin bootstrap (seconds): longer than the mouth's own memory."""
MARGIN_BOOTSTRAPS = 2000
MARGIN_MIN_BLOCKS = 4
"""Clips shorter than this many blocks get no interval: too few blocks to resample."""


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
