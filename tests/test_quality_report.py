"""quality.report: verdicts (which metrics can separate the floor) and the Markdown table."""

from __future__ import annotations

from facecast.quality import report
from facecast.quality.metrics import METRICS


def _row(name, **metrics):
    full = {m.key: float("nan") for m in METRICS}
    full.update(metrics)
    return report.RowResult(name, name, full, 100, 0.0)


def test_verdicts_mark_metrics_that_cannot_separate_the_floor():
    rows = {
        "real": _row("real", aperture_corr=1.0, psnr_outside_mouth=float("inf"), jitter=0.004),
        "still": _row("still", aperture_corr=float("nan"), psnr_outside_mouth=25.0, jitter=0.004),
        "loudness": _row("loudness", aperture_corr=0.30, psnr_outside_mouth=25.1, jitter=0.004),
        "facecast": _row("facecast", aperture_corr=0.55, psnr_outside_mouth=25.2, jitter=0.0042),
    }
    v = report.verdicts(rows)
    assert v["aperture_corr"]["floor"] == "better"
    assert v["aperture_corr"]["vs_still"] == "better" and v["aperture_corr"]["vs_loudness"] == "better"
    assert v["aperture_corr"]["evidence"] is True
    # PSNR: real is far above the still floor, but facecast is within 0.5 dB of it: not evidence.
    assert v["psnr_outside_mouth"]["vs_still"] == "same" and v["psnr_outside_mouth"]["evidence"] is False
    # Jitter: real and still are the same: the metric cannot tell a real face from a frozen one.
    assert v["jitter"]["floor"] == "same" and v["jitter"]["evidence"] is False
    assert "not evidence" in report.markdown_table(report.ClipReport("x", "x", 25.0, 100, 4.0, (8, 8), (8, 8), 0, rows,
                                                                     v, [], {})).split("PSNR")[1].split("\n")[0]
