"""quality.stats: lip-sync margins and their block-bootstrap intervals, on synthetic series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facecast.quality import stats
from facecast.quality.metrics import _corr


def _smooth_noise(n: int, rng: np.random.Generator, width: int = 8) -> np.ndarray:
    """Noise with a few frames of memory, like a mouth-opening series."""
    return np.convolve(rng.normal(size=n + width), np.ones(width) / width, "valid")[:n]


def test_corr_margin_separates_a_good_row_from_a_poor_one():
    rng = np.random.default_rng(1)
    real = _smooth_noise(500, rng)
    good = real + 0.5 * _smooth_noise(500, rng)   # r ~ 0.9 with real
    poor = real + 3.0 * _smooth_noise(500, rng)   # r ~ 0.3
    m = stats.corr_margin(good, poor, real, fps=25.0)
    assert m.delta == pytest.approx(_corr(good, real) - _corr(poor, real))
    assert 0 < m.lo < m.delta < m.hi and m.verdict == "above"
    assert stats.corr_margin(poor, good, real, fps=25.0).verdict == "below"
    # Same seed, same interval (reproducible tables).
    assert stats.corr_margin(good, poor, real, fps=25.0) == m


def test_corr_margin_does_not_separate_two_rows_of_equal_quality():
    rng = np.random.default_rng(2)
    real = _smooth_noise(300, rng)
    a, b = real + 2.0 * _smooth_noise(300, rng), real + 2.0 * _smooth_noise(300, rng)
    m = stats.corr_margin(a, b, real, fps=25.0)
    assert m.lo < 0 < m.hi and m.verdict == "not separable"


def test_corr_margin_blocks_widen_the_interval_for_autocorrelated_series():
    # Resampling single frames treats 25 correlated frames as 25 independent ones: the
    # interval comes out too narrow. One-second blocks keep the series' memory.
    rng = np.random.default_rng(3)
    real = _smooth_noise(400, rng, width=12)
    a, b = real + 2.0 * _smooth_noise(400, rng, width=12), real + 2.0 * _smooth_noise(400, rng, width=12)
    frames = stats.corr_margin(a, b, real, fps=25.0, block_s=1 / 25)
    blocks = stats.corr_margin(a, b, real, fps=25.0, block_s=1.0)
    assert blocks.hi - blocks.lo > 1.5 * (frames.hi - frames.lo)


def test_corr_margin_skips_missing_frames_and_counts_a_constant_row_as_zero():
    rng = np.random.default_rng(4)
    real = _smooth_noise(200, rng)
    fc = real + 0.5 * _smooth_noise(200, rng)
    real_gaps = real.copy()
    real_gaps[50:60] = np.nan  # face not found there
    m = stats.corr_margin(fc, np.full(200, 0.1), real_gaps, fps=25.0)
    assert m.delta == pytest.approx(_corr(fc, real_gaps)) and m.verdict == "above"
    assert math.isnan(stats.corr_margin(fc[:2], fc[:2], real[:2], fps=25.0).delta)
    short = stats.corr_margin(fc[:75], fc[:75] * 0, real[:75], fps=25.0)  # 3 s: too few 1-s blocks
    assert np.isfinite(short.delta) and short.verdict == "n/a" and "no interval" in short.text()


def test_pooled_margin_is_the_mean_over_clips_with_a_wider_interval_when_clips_disagree():
    rng = np.random.default_rng(5)
    clips, mixed = [], []
    for k in range(6):
        real = _smooth_noise(250, rng)
        good, poor = real + 0.5 * _smooth_noise(250, rng), real + 3.0 * _smooth_noise(250, rng)
        clips.append((good, poor, real, 25.0))
        mixed.append((good, poor, real, 25.0) if k % 2 else (poor, good, real, 25.0))
    pooled = stats.pooled_margin(clips)
    per = [stats.corr_margin(*c[:3], fps=25.0).delta for c in clips]
    assert pooled.delta == pytest.approx(np.mean(per)) and pooled.verdict == "above"
    # Half the clips say +, half say -: the mean is near 0 and not separable.
    assert stats.pooled_margin(mixed).verdict == "not separable"
