"""facecast eval: metrics on synthetic data, the harness on a short real clip, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import media

from facecast import eval as ev
from facecast.errors import InputError, NoFaceError
from facecast.types import AudioChunk, VideoFrames

# --------------------------------------------------------------------------------------------
# Metric functions on synthetic data


def test_lagged_corr_finds_a_known_delay():
    rng = np.random.default_rng(0)
    ref = np.convolve(rng.normal(size=200), np.ones(5) / 5, "same")
    late = np.concatenate([np.zeros(3), ref[:-3]])  # happens 3 frames later
    lag, r = ev._best_lag(late, ref)
    assert lag == 3 and r > 0.99
    lag, _ = ev._best_lag(ref, late)
    assert lag == -3


def test_constant_signal_has_no_correlation():
    assert math.isnan(ev._corr(np.ones(50), np.arange(50.0)))


def _smooth_noise(n: int, rng: np.random.Generator, width: int = 8) -> np.ndarray:
    """Noise with a few frames of memory, like a mouth-opening series."""
    return np.convolve(rng.normal(size=n + width), np.ones(width) / width, "valid")[:n]


def test_corr_margin_separates_a_good_row_from_a_poor_one():
    rng = np.random.default_rng(1)
    real = _smooth_noise(500, rng)
    good = real + 0.5 * _smooth_noise(500, rng)   # r ~ 0.9 with real
    poor = real + 3.0 * _smooth_noise(500, rng)   # r ~ 0.3
    m = ev.corr_margin(good, poor, real, fps=25.0)
    assert m.delta == pytest.approx(ev._corr(good, real) - ev._corr(poor, real))
    assert 0 < m.lo < m.delta < m.hi and m.verdict == "above"
    assert ev.corr_margin(poor, good, real, fps=25.0).verdict == "below"
    # Same seed, same interval (reproducible tables).
    assert ev.corr_margin(good, poor, real, fps=25.0) == m


def test_corr_margin_does_not_separate_two_rows_of_equal_quality():
    rng = np.random.default_rng(2)
    real = _smooth_noise(300, rng)
    a, b = real + 2.0 * _smooth_noise(300, rng), real + 2.0 * _smooth_noise(300, rng)
    m = ev.corr_margin(a, b, real, fps=25.0)
    assert m.lo < 0 < m.hi and m.verdict == "not separable"


def test_corr_margin_blocks_widen_the_interval_for_autocorrelated_series():
    # Resampling single frames treats 25 correlated frames as 25 independent ones: the
    # interval comes out too narrow. One-second blocks keep the series' memory.
    rng = np.random.default_rng(3)
    real = _smooth_noise(400, rng, width=12)
    a, b = real + 2.0 * _smooth_noise(400, rng, width=12), real + 2.0 * _smooth_noise(400, rng, width=12)
    frames = ev.corr_margin(a, b, real, fps=25.0, block_s=1 / 25)
    blocks = ev.corr_margin(a, b, real, fps=25.0, block_s=1.0)
    assert blocks.hi - blocks.lo > 1.5 * (frames.hi - frames.lo)


def test_corr_margin_skips_missing_frames_and_counts_a_constant_row_as_zero():
    rng = np.random.default_rng(4)
    real = _smooth_noise(200, rng)
    fc = real + 0.5 * _smooth_noise(200, rng)
    real_gaps = real.copy()
    real_gaps[50:60] = np.nan  # face not found there
    m = ev.corr_margin(fc, np.full(200, 0.1), real_gaps, fps=25.0)
    assert m.delta == pytest.approx(ev._corr(fc, real_gaps)) and m.verdict == "above"
    assert math.isnan(ev.corr_margin(fc[:2], fc[:2], real[:2], fps=25.0).delta)
    short = ev.corr_margin(fc[:75], fc[:75] * 0, real[:75], fps=25.0)  # 3 s: too few 1-s blocks
    assert np.isfinite(short.delta) and short.verdict == "n/a" and "no interval" in short.text()


def test_pooled_margin_is_the_mean_over_clips_with_a_wider_interval_when_clips_disagree():
    rng = np.random.default_rng(5)
    clips, mixed = [], []
    for k in range(6):
        real = _smooth_noise(250, rng)
        good, poor = real + 0.5 * _smooth_noise(250, rng), real + 3.0 * _smooth_noise(250, rng)
        clips.append((good, poor, real, 25.0))
        mixed.append((good, poor, real, 25.0) if k % 2 else (poor, good, real, 25.0))
    pooled = ev.pooled_margin(clips)
    per = [ev.corr_margin(*c[:3], fps=25.0).delta for c in clips]
    assert pooled.delta == pytest.approx(np.mean(per)) and pooled.verdict == "above"
    # Half the clips say +, half say -: the mean is near 0 and not separable.
    assert ev.pooled_margin(mixed).verdict == "not separable"


def _face_points(n: int, seed: int = 0) -> np.ndarray:
    """Mediapipe-like landmark sets from a real photo, with the mouth opening over time."""
    rng = np.random.default_rng(seed)
    base = _astronaut_points()
    pts = np.repeat(base[None], n, axis=0).astype(np.float64)
    opening = np.abs(np.sin(np.arange(n) / 3.0)) * 10
    lower = list(ev.face_mod.LIPS_INNER_LOWER[1:-1]) + list(ev.face_mod.LIPS_OUTER_LOWER[1:-1])
    pts[:, lower, 1] += opening[:, None]
    pts += rng.normal(scale=0.05, size=pts.shape)
    return pts.astype(np.float32)


_PTS = {}


def _astronaut_points() -> np.ndarray:
    if "a" not in _PTS:
        from skimage import data

        _PTS["a"] = ev.face_mod.find_face(data.astronaut(), source="astronaut").points
    return _PTS["a"]


def test_lmd_ignores_translation_scale_and_roll_but_sees_mouth_shape():
    pts = _face_points(20)
    moved = pts.copy()
    c = pts[:, :, :2].mean(axis=1, keepdims=True)
    th = 0.2
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    moved[:, :, :2] = ((pts[:, :, :2] - c) @ rot.T) * 1.7 + c + np.array([40.0, -25.0])
    assert ev.lmd(moved, pts) < 1e-3
    still = np.repeat(pts[:1], 20, axis=0)
    assert ev.lmd(still, pts) > 0.02


def test_blinks_are_counted_as_events():
    eye = np.full(300, 0.25)
    eye[50:54] = 0.05
    eye[200:205] = 0.04
    eye[120] = 0.2  # a small dip is not a blink
    eye[250:280] = 0.05  # 1.2 s with the eyes down is not a blink either
    assert ev.blink_events(eye, fps=25.0) == 2
    assert ev.blink_rate(eye, fps=25.0) == pytest.approx(2 / (300 / 25 / 60))


def test_closed_in_silence_uses_the_real_closed_level():
    real = np.concatenate([np.zeros(20), np.full(80, 0.2)])
    voiced = np.concatenate([np.zeros(20, bool), np.ones(80, bool)])
    assert ev.closed_in_silence(np.full(100, 0.02), voiced, real) == 1.0
    assert ev.closed_in_silence(np.full(100, 0.15), voiced, real) == 0.0
    assert math.isnan(ev.closed_in_silence(np.zeros(100), np.ones(100, bool), real))  # no silence


def test_jitter_is_zero_for_a_still_face_and_grows_with_noise():
    pts = np.repeat(_astronaut_points()[None], 30, axis=0)
    assert ev.jitter(pts) == pytest.approx(0.0, abs=1e-9)
    noisy = pts + np.random.default_rng(1).normal(scale=1.0, size=pts.shape).astype(np.float32)
    assert ev.jitter(noisy) > 0.005


def _row(name, **metrics):
    full = {m.key: float("nan") for m in ev.METRICS}
    full.update(metrics)
    return ev.RowResult(name, name, full, 100, 0.0)


def test_verdicts_mark_metrics_that_cannot_separate_the_floor():
    rows = {
        "real": _row("real", aperture_corr=1.0, psnr_outside_mouth=float("inf"), jitter=0.004),
        "still": _row("still", aperture_corr=float("nan"), psnr_outside_mouth=25.0, jitter=0.004),
        "loudness": _row("loudness", aperture_corr=0.30, psnr_outside_mouth=25.1, jitter=0.004),
        "facecast": _row("facecast", aperture_corr=0.55, psnr_outside_mouth=25.2, jitter=0.0042),
    }
    v = ev.verdicts(rows)
    assert v["aperture_corr"]["floor"] == "better"
    assert v["aperture_corr"]["vs_still"] == "better" and v["aperture_corr"]["vs_loudness"] == "better"
    assert v["aperture_corr"]["evidence"] is True
    # PSNR: real is far above the still floor, but facecast is within 0.5 dB of it: not evidence.
    assert v["psnr_outside_mouth"]["vs_still"] == "same" and v["psnr_outside_mouth"]["evidence"] is False
    # Jitter: real and still are the same: the metric cannot tell a real face from a frozen one.
    assert v["jitter"]["floor"] == "same" and v["jitter"]["evidence"] is False
    assert "not evidence" in ev.markdown_table(ev.ClipReport("x", "x", 25.0, 100, 4.0, (8, 8), (8, 8), 0, rows, v,
                                                             [], {})).split("PSNR")[1].split("\n")[0]


def test_options_reject_unknown_modes_and_baselines():
    with pytest.raises(InputError, match="mode"):
        ev.EvalOptions(mode="dub2")
    with pytest.raises(InputError, match="baseline"):
        ev.EvalOptions(baselines=("real", "blurry"))
    with pytest.raises(InputError, match="size"):
        ev.EvalOptions(size=255)


# --------------------------------------------------------------------------------------------
# The harness on a real clip (3 s of may_en at 256 px: ~15 s on 2 cores)


@pytest.fixture(scope="module")
def may_report(tmp_path_factory):
    clip = media("video/may_en.mp4")
    plots = tmp_path_factory.mktemp("plots")
    return ev.evaluate_clip(clip, ev.EvalOptions(size=256, max_seconds=3.0, plot_dir=plots))


def test_rows_share_the_clip_grid_and_pixel_space(may_report):
    r = may_report
    assert r.size == (256, 256) and r.num_frames == 75
    assert list(r.rows) == ["real", "still", "loudness", "facecast"]
    assert all(row.num_frames == 75 for row in r.rows.values())
    assert any("--max-seconds" in n for n in r.notes)
    assert all(math.isnan(row.metrics["duration_diff"]) for row in r.rows.values())  # truncated clip


def test_real_is_the_ceiling_and_still_the_floor(may_report):
    real, still, fc = (may_report.rows[k].metrics for k in ("real", "still", "facecast"))
    assert real["aperture_corr"] > 0.99 and real["aperture_lag"] == 0 and real["lmd"] < 1e-6
    assert real["psnr_outside_mouth"] == float("inf") and real["ssim_outside_mouth"] == pytest.approx(1.0)
    # The still floor: no mouth motion of its own (the tracker's noise only).
    assert math.isnan(still["aperture_corr"]) or abs(still["aperture_corr"]) < 0.3
    assert still["lmd"] > 0.02
    # facecast moves its mouth: it is measurably not the still frame.
    fc_ap = may_report.rows["facecast"].mouth_open
    still_ap = may_report.rows["still"].mouth_open
    assert np.nanstd(fc_ap) > 3 * np.nanstd(still_ap)
    assert may_report.verdicts["aperture_corr"]["floor"] == "better"
    assert fc["av_corr"] > 0.3  # facecast's mouth follows the speech it was given


def test_identity_and_image_quality(may_report):
    real, still, fc = (may_report.rows[k].metrics for k in ("real", "still", "facecast"))
    if not ev.identity_available():
        pytest.skip(ev.identity_unavailable_reason())
    # The portrait against itself is the same person by far; all rows stay under dlib's 0.6.
    assert still["identity"] < 0.1
    assert 0 < fc["identity"] < 0.6 and 0 < real["identity"] < 0.6
    assert 10 < fc["psnr_outside_mouth"] < 60 and 0 < fc["ssim_outside_mouth"] < 1


def test_report_json_tables_and_plots(may_report, tmp_path):
    data = json.loads(json.dumps(may_report.to_json(), allow_nan=False))
    assert data["rows"]["real"]["metrics"]["psnr_outside_mouth"] == "inf"
    assert set(data["rows"]["facecast"]["metrics"]) == {m.key for m in ev.METRICS}
    assert data["rows"]["facecast"]["stage_seconds"]["render"] > 0
    assert len(may_report.plots) == 2
    from PIL import Image

    for p in may_report.plots:
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    md = ev.markdown_report([may_report])
    assert "| mouth aperture corr. with real (lag 0) |" in md and "may_en" in md
    # The lip-sync margin over loudness: a 3-s excerpt is too short for an interval.
    m = data["lipsync_margins"]["vs_loudness"]
    assert m["delta"] == pytest.approx(data["rows"]["facecast"]["metrics"]["aperture_corr"]
                                       - data["rows"]["loudness"]["metrics"]["aperture_corr"], abs=1e-3)
    assert m["lo"] is None and m["verdict"] == "n/a"
    assert "Lip-sync margins" in md and "facecast - loudness" in md
    out = tmp_path / "eval.json"
    ev.write_json([may_report], out)
    written = json.loads(out.read_text())
    assert written["clips"][0]["clip"] == "may_en"
    assert written["lipsync_margins"]["vs_loudness"]["counts"]["n/a"] == 1


# --------------------------------------------------------------------------------------------
# Bad inputs


def test_missing_clip_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ev.evaluate_clip(tmp_path / "nope.mp4", ev.EvalOptions(size=128))


def _write_clip(path, frames: np.ndarray, with_audio: bool):
    from facecast.media import Mp4Writer

    h, w = frames.shape[1:3]
    with Mp4Writer(path, fps=25.0, width=w, height=h, audio_rate=16000 if with_audio else None) as wr:
        wr.write_video(VideoFrames(torch.from_numpy(frames), 25.0, 0))
        if with_audio:
            t = np.arange(int(16000 * len(frames) / 25)) / 16000
            wr.write_audio(AudioChunk((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], 16000, 0.0))
    return path


def test_clip_without_audio_is_refused(tmp_path):
    from skimage import data

    frames = np.repeat(data.astronaut()[None, :256, 128:384], 10, axis=0).copy()
    clip = _write_clip(tmp_path / "silent.mp4", frames, with_audio=False)
    with pytest.raises(InputError, match="no audio track"):
        ev.evaluate_clip(clip, ev.EvalOptions(size=256))


def test_clip_without_a_face_is_refused(tmp_path):
    frames = np.full((10, 128, 128, 3), 128, np.uint8)
    clip = _write_clip(tmp_path / "grey.mp4", frames, with_audio=True)
    with pytest.raises(NoFaceError, match="face"):
        ev.evaluate_clip(clip, ev.EvalOptions(size=128))


def test_cli_eval_reports_errors_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app

    res = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.mp4")])
    assert res.exit_code == 2
    assert "not found" in res.output
