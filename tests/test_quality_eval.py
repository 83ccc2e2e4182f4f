"""quality.eval: the harness on a short real clip, bad inputs, the CLI's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import media

from facecast.errors import InputError, NoFaceError
from facecast.quality import metrics, report
from facecast.quality.eval import evaluate_clip
from facecast.quality.options import EvalOptions
from facecast.types import AudioChunk, VideoFrames

# --------------------------------------------------------------------------------------------
# The harness on a real clip (3 s of may_en at 256 px: ~15 s on 2 cores)


@pytest.fixture(scope="module")
def may_report(tmp_path_factory):
    clip = media("video/may_en.mp4")
    plots = tmp_path_factory.mktemp("plots")
    return evaluate_clip(clip, EvalOptions(size=256, max_seconds=3.0, plot_dir=plots))


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
    if not metrics.identity_available():
        pytest.skip(metrics.identity_unavailable_reason())
    # The portrait against itself is the same person by far; all rows stay under dlib's 0.6.
    assert still["identity"] < 0.1
    assert 0 < fc["identity"] < 0.6 and 0 < real["identity"] < 0.6
    assert 10 < fc["psnr_outside_mouth"] < 60 and 0 < fc["ssim_outside_mouth"] < 1


def test_report_json_tables_and_plots(may_report, tmp_path):
    data = json.loads(json.dumps(may_report.to_json(), allow_nan=False))
    assert data["rows"]["real"]["metrics"]["psnr_outside_mouth"] == "inf"
    assert set(data["rows"]["facecast"]["metrics"]) == {m.key for m in metrics.METRICS}
    assert data["rows"]["facecast"]["stage_seconds"]["render"] > 0
    assert len(may_report.plots) == 2
    from PIL import Image

    for p in may_report.plots:
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    md = report.markdown_report([may_report])
    assert "| mouth aperture corr. with real (lag 0) |" in md and "may_en" in md
    # The lip-sync margin over loudness: a 3-s excerpt is too short for an interval.
    m = data["lipsync_margins"]["vs_loudness"]
    assert m["delta"] == pytest.approx(data["rows"]["facecast"]["metrics"]["aperture_corr"]
                                       - data["rows"]["loudness"]["metrics"]["aperture_corr"], abs=1e-3)
    assert m["lo"] is None and m["verdict"] == "n/a"
    assert "Lip-sync margins" in md and "facecast - loudness" in md
    out = tmp_path / "eval.json"
    report.write_json([may_report], out)
    written = json.loads(out.read_text())
    assert written["clips"][0]["clip"] == "may_en"
    assert written["lipsync_margins"]["vs_loudness"]["counts"]["n/a"] == 1


# --------------------------------------------------------------------------------------------
# Bad inputs


def test_missing_clip_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        evaluate_clip(tmp_path / "nope.mp4", EvalOptions(size=128))


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
        evaluate_clip(clip, EvalOptions(size=256))


def test_clip_without_a_face_is_refused(tmp_path):
    frames = np.full((10, 128, 128, 3), 128, np.uint8)
    clip = _write_clip(tmp_path / "grey.mp4", frames, with_audio=True)
    with pytest.raises(NoFaceError, match="face"):
        evaluate_clip(clip, EvalOptions(size=128))


def test_cli_eval_reports_errors_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app

    res = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.mp4")])
    assert res.exit_code == 2
    assert "not found" in res.output
