"""`facecast eval`'s results: per-row records, verdicts (does a metric separate the real clip from the
still floor, and facecast from the baselines?), lip-sync margins per clip, and the outputs: rich
table, Markdown, JSON. The pictures are in plots.py."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sysinfo import machine_info
from .metrics import METRIC_BY_KEY, METRICS, MetricSpec
from .stats import Margin, corr_margin, pooled_margin

__all__ = ["RowResult", "ClipReport", "verdicts", "MARGIN_ROWS", "lipsync_margins", "fmt_value", "rich_table",
           "markdown_table", "summary_rows", "margin_summary", "margin_lines", "markdown_summary",
           "markdown_margins", "markdown_report", "write_json"]


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


MARGIN_ROWS = ("loudness",)
"""Rows facecast's lip sync is compared with, with an interval (ClipReport.margins). Not the
still floor: its opening is constant up to tracker noise, which the verdict table covers."""


def lipsync_margins(rows: dict[str, RowResult], fps: float) -> dict[str, Margin]:
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
