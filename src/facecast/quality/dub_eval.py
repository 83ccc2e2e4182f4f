"""`facecast eval --mode dub`: dubbing scored so that copying the original mouth cannot win.

Protocol (issue #14): clips of one person; the video of clip A is dubbed with the sound of clip B
(A != B, every ordered pair), and the dubbed mouth is compared with B's real mouth, which is what
that sound looked like when it was spoken. Rows per pair:

    dub       facecast dub of A's video with B's sound
    photo     facecast say: one frame of A (the photo mode's portrait) with B's sound
    loudness  the same with the jaw driven by loudness alone (the baseline)
    source    A's video untouched (its own mouth, which says something else: the floor)
    real      B's real mouth itself (the ceiling; its closed-in-silence is the target value)

Lip-sync metrics of every row against B's real mouth (quality.metrics): aperture correlation at
lag 0 and at the best lag (|lag| <= 10 frames), normalised LMD, closed mouth in B's silences.
Dub only, against A's own frames (frames before any back-and-forth turn): PSNR outside the
lower-face mask, mouth sharpness (variance of the Laplacian over the lip box) relative to the
source, dlib identity distance to A's frames (and A's own spread as the reference), jitter of
the non-mouth landmarks (and A's own). Pooled: the aperture series of all pairs concatenated.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import face
from ..errors import InputError
from ..types import ANALYSIS_RATE
from .metrics import closed_in_silence, identity_model, jitter, lagged_corr, lmd
from .options import EvalOptions

__all__ = ["DubPairReport", "evaluate_dub", "markdown_dub", "ROWS"]

ROWS = ("dub", "photo", "loudness", "source", "real")
LIPSYNC = ("aperture_corr", "aperture_corr_near", "aperture_corr_best", "aperture_lag", "lmd", "closed_in_silence")
LINKS = ("asked_corr", "asked_corr_best", "asked_lag", "drawn_vs_asked", "rendered_vs_asked", "rendered_vs_drawn")
"""The dub's lip-sync chain, link by link (aperture r at lag 0 unless "best"): the lip gap the
mouth model asked for against the real mouth; the drawn library picture's own gap against the
asked one (the picking); the gap the face mesh measures on the output against the asked and
the drawn one (placing, blending, encoding and re-measuring)."""


@dataclass
class Truth:
    """A clip as the provider of sound and of the real mouth for that sound."""

    path: Path
    fps: float
    points: np.ndarray  # [n, 478, 3] real landmarks
    voiced: np.ndarray  # [n]
    wav: Path  # its sound, cut to the evaluated length
    num_frames: int


@dataclass
class DubPairReport:
    video: str
    audio: str
    fps: float
    num_frames: int
    rows: dict[str, dict[str, float]]
    series: dict[str, np.ndarray] = field(default_factory=dict)  # mouth_open per row, and "real"
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report: str = ""

    def to_json(self) -> dict:
        def num(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"video": self.video, "audio": self.audio, "fps": self.fps, "num_frames": self.num_frames,
                "rows": {r: {k: num(v) for k, v in m.items()} for r, m in self.rows.items()},
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()}, "notes": self.notes,
                "dub_report": self.report}


def _decode(path: Path, limit: int | None = None) -> tuple[np.ndarray, float]:
    from ..media import open_video

    src = open_video(path)
    out, n = [], 0
    for chunk in src:
        out.append(chunk.frames.numpy())
        n += chunk.num_frames
        if limit is not None and n >= limit:
            break
    frames = np.concatenate(out)
    return (frames[:limit] if limit else frames), src.fps


def _truth(path: Path, options: EvalOptions, tmp: Path) -> Truth:
    from ..analysis import VoiceActivity
    from ..audio import load_audio, write_wav

    frames, fps = _decode(path, None if options.max_seconds is None else int(options.max_seconds * 30 + 1))
    n = len(frames) if options.max_seconds is None else min(len(frames), int(math.floor(options.max_seconds * fps)))
    frames = frames[:n]
    points, found = face.track_video(frames, fps=fps, smooth=False)
    if found.mean() < 0.5:
        raise InputError(f"{path}: the face is found in only {found.sum()} of {n} frames; eval --mode dub needs "
                         "talking-head clips.")
    a = load_audio(path, sample_rate=ANALYSIS_RATE, mono=True).samples[0][: int(round(n / fps * ANALYSIS_RATE))]
    voiced = VoiceActivity().voiced_frames(a, fps, n)
    return Truth(path, fps, points, voiced, write_wav(tmp / f"{path.stem}.wav", a), n)


def _scores(points: np.ndarray, truth: Truth) -> dict[str, float]:
    m = face.mouth_metrics(points)["mouth_open"]
    real = face.mouth_metrics(truth.points)["mouth_open"]
    n = min(len(m), len(real))
    lags, r = lagged_corr(m[:n], real[:n])
    out = {"aperture_corr": float(r[lags == 0][0]) if np.isfinite(r[lags == 0][0]) else 0.0}
    near = r[np.abs(lags) <= 1]
    out["aperture_corr_near"] = float(np.nanmax(near)) if np.isfinite(near).any() else 0.0  # the goal: >= 0.6
    if np.isfinite(r).any():
        i = int(np.nanargmax(r))
        out["aperture_corr_best"], out["aperture_lag"] = float(r[i]), float(lags[i])
    else:
        out["aperture_corr_best"], out["aperture_lag"] = 0.0, float("nan")
    out["lmd"] = lmd(points[:n], truth.points[:n])
    out["closed_in_silence"] = closed_in_silence(m[:n], truth.voiced[:n], real[:n])
    return out


def _links(trace: dict, rendered: np.ndarray, truth: Truth, n: int) -> dict[str, float]:
    """The LINKS of one dub from its report's trace (asked and drawn gap per output frame)."""
    real = face.mouth_metrics(truth.points)["mouth_open"]
    asked = np.asarray(trace.get("asked", []), np.float64)[:n]
    drawn = np.asarray(trace.get("drawn", []), np.float64)[:n]
    out = {}
    if len(asked) > 3 and np.isfinite(asked).sum() > 3:
        k = min(len(asked), len(real))
        lags, r = lagged_corr(np.nan_to_num(asked[:k], nan=float(np.nanmean(asked))), real[:k])
        i = int(np.nanargmax(r))
        out.update(asked_corr=float(r[lags == 0][0]), asked_corr_best=float(r[i]), asked_lag=float(lags[i]))

    def corr(a, b):
        k = min(len(a), len(b))
        ok = np.isfinite(a[:k]) & np.isfinite(b[:k])
        return float(np.corrcoef(a[:k][ok], b[:k][ok])[0, 1]) if ok.sum() > 3 and a[:k][ok].std() > 0 else float("nan")

    out["drawn_vs_asked"] = corr(drawn, asked)
    out["rendered_vs_asked"] = corr(np.asarray(rendered, np.float64), asked)
    out["rendered_vs_drawn"] = corr(np.asarray(rendered, np.float64), drawn)
    return out


def _mouth_box(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    from ..dubbing.mask import iod
    from ..landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER

    p = points[list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER), :2]
    u = 0.15 * iod(points)
    H, W = shape
    x0, y0 = np.maximum(np.floor(p.min(0) - u), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(p.max(0) + u), [W, H]).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _sharpness(img: np.ndarray, box) -> float:
    import cv2

    x0, y0, x1, y1 = box
    g = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(g, cv2.CV_32F).var()) if g.size else float("nan")


def _footage_scores(dubbed: np.ndarray, dpts: np.ndarray, source: np.ndarray, spts: np.ndarray, n: int,
                    options: EvalOptions) -> dict[str, float]:
    """PSNR outside the mask, sharpness, identity and jitter of the dubbed frames [:n] against the
    source frames they were made from."""
    from ..dubbing.mask import iod, lower_face_mask

    H, W = source.shape[1:3]
    se, cnt, sd, ss, fd, fs = 0.0, 0, [], [], [], []
    for i in range(n):
        if i and np.isfinite(spts[i]).all():  # frame-to-frame change in the mouth box: flicker shows here
            x0, y0, x1, y1 = _mouth_box(spts[i], (H, W))
            fd.append(float(np.abs(dubbed[i, y0:y1, x0:x1].astype(np.int16) - dubbed[i - 1, y0:y1, x0:x1]).mean()))
            fs.append(float(np.abs(source[i, y0:y1, x0:x1].astype(np.int16) - source[i - 1, y0:y1, x0:x1]).mean()))
        if not (np.isfinite(spts[i]).all() and np.isfinite(dpts[i]).all()):
            continue
        u = iod(spts[i])
        # The dub's mask (grow 0.12 + feather 0.08 IOD) around both the source's and the dubbed
        # lower face; everything beyond it must be the source.
        m = lower_face_mask([spts[i], dpts[i]], (W, H), u, 0.12 + 0.06, 0.08)
        keep = np.ones((H, W), bool)
        x0, y0, x1, y1 = m.box
        keep[y0:y1, x0:x1] = m.alpha == 0
        d = dubbed[i].astype(np.float32) - source[i].astype(np.float32)
        se += float((d[keep] ** 2).sum())
        cnt += int(keep.sum()) * 3
        box = _mouth_box(spts[i], (H, W))
        sd.append(_sharpness(dubbed[i], _mouth_box(dpts[i], (H, W))))
        ss.append(_sharpness(source[i], box))
    out = {"psnr_outside_mask": 10 * math.log10(255**2 / max(se / max(cnt, 1), 1e-12)) if cnt else float("nan"),
           "sharpness_ratio": float(np.nanmean(sd) / max(np.nanmean(ss), 1e-9)) if sd else float("nan"),
           "jitter": jitter(dpts[:n]), "jitter_source": jitter(spts[:n]),
           "mouth_change_ratio": float(np.mean(fd) / max(np.mean(fs), 1e-9)) if fd else float("nan")}
    ident = identity_model() if options.identity else None
    if ident is not None and n:
        idx = np.unique(np.linspace(0, n - 1, min(n, 12)).round().astype(int))
        d, own = [], []
        for i in idx:
            e_d, e_s = ident.embed(dubbed[i], dpts[i]), ident.embed(source[i], spts[i])
            e_0 = ident.embed(source[idx[0]], spts[idx[0]])
            if e_d is not None and e_s is not None:
                d.append(float(np.linalg.norm(e_d - e_s)))
            if e_s is not None and e_0 is not None and i != idx[0]:
                own.append(float(np.linalg.norm(e_s - e_0)))
        out["identity"] = float(np.mean(d)) if d else float("nan")
        out["identity_source_spread"] = float(np.mean(own)) if own else float("nan")
    return out


def _say_frames(portrait, wav: Path, fps: float, motion) -> np.ndarray:
    from ..options import RenderOptions, SayOptions
    from ..pipeline import say_chunks

    opts = SayOptions(size=None, fps=fps, motion=motion, render=RenderOptions())
    return np.concatenate([c.video.frames.cpu().numpy() for c in say_chunks(portrait, audio=wav, options=opts)])


def evaluate_pair(video: Path, truth: Truth, options: EvalOptions, tmp: Path,
                  progress: Callable[[str], None]) -> DubPairReport:
    from ..dubbing import DubReport, dub
    from ..twin.generate import pingpong_index
    from .clips import pick_portrait_frame

    src, fps = _decode(video)
    notes = []
    if abs(fps - truth.fps) > 1e-3:
        notes.append(f"frame rates differ ({fps:.3f} vs {truth.fps:.3f}): frames compared by index")
    spts, sfound = face.track_video(src, fps=fps, smooth=False)
    rows: dict[str, dict[str, float]] = {}
    series: dict[str, np.ndarray] = {"real": face.mouth_metrics(truth.points)["mouth_open"]}
    secs: dict[str, float] = {}
    n = truth.num_frames

    def score(name: str, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = frames[:n]
        pts, _ = face.track_video(frames, fps=fps, smooth=False)
        rows[name] = _scores(pts, truth)
        series[name] = face.mouth_metrics(pts)["mouth_open"]
        return frames, pts

    rows["real"] = _scores(truth.points, truth)  # the ceiling: B's own mouth (r 1, LMD 0, its silences)
    progress(f"{video.stem} <- {truth.path.stem}: dub")
    t = time.perf_counter()
    rep = DubReport()
    rep.trace = {}
    out = dub(video, tmp / "dub.mp4", audio=truth.wav, options=options.dub,
              report=rep)
    secs["dub"] = time.perf_counter() - t
    dubbed, dpts = score("dub", _decode(out)[0])
    rows["dub"].update(_links(rep.trace, series["dub"], truth, n))
    if rep.learned is not None:
        notes.append(rep.learned.text())
    m = min(len(src) - int(round(fps)), len(dubbed))  # frames shown as they are in the source
    rows["dub"].update(_footage_scores(dubbed, dpts, src, spts, max(m, 0), options))
    idx = pingpong_index(np.arange(n), fps, len(src), fps)
    score("source", src[idx])
    mo = face.mouth_metrics(spts)
    k = pick_portrait_frame(mo["mouth_open"], (mo["eye_open_left"] + mo["eye_open_right"]) / 2, sfound)
    portrait = face.frame_portrait(src[k], face.find_face(src[k]), size=None, source=f"{video.name} frame {k}")
    for name, drive in (("photo", "phones"), ("loudness", "loudness")):
        progress(f"{video.stem} <- {truth.path.stem}: {name}")
        t = time.perf_counter()
        frames = _say_frames(portrait, truth.wav, fps, dataclasses.replace(options.motion, drive=drive))
        secs[name] = time.perf_counter() - t
        score(name, frames)
    if options.plot_dir is not None:
        _sheet(options.plot_dir / f"dub_{video.stem}_{truth.path.stem}.png", src, dubbed, truth, spts, dpts, n)
    return DubPairReport(video.name, truth.path.name, fps, n, rows, series, secs, notes, rep.text())


def _sheet(path: Path, src, dubbed, truth: Truth, spts, dpts, n: int) -> None:
    """Source / dubbed / real mouths side by side at 8 moments (third-party footage: keep it out
    of the repository)."""
    import cv2
    from PIL import Image

    from ..dubbing.mask import iod

    real, _ = _decode(truth.path, n)
    rows = []
    for i in np.linspace(0, min(n, len(dubbed), len(src)) - 1, 8).round().astype(int):
        tiles = []
        for img, pts in ((src[i], spts[i]), (dubbed[i], dpts[i]), (real[i], truth.points[i])):
            if not np.isfinite(pts).all():
                tiles.append(np.zeros((128, 128, 3), np.uint8))
                continue
            c = pts[[13, 14], :2].mean(0)
            r = 0.8 * iod(pts)
            x0, y0 = int(max(c[0] - r, 0)), int(max(c[1] - r * 0.8, 0))
            crop = img[y0:int(c[1] + r * 1.2), x0:int(c[0] + r)]
            tiles.append(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_CUBIC))
        rows.append(np.concatenate(tiles, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def evaluate_dub(clips: list[Path], options: EvalOptions, progress: Callable[[str], None] | None = None
                 ) -> tuple[list[DubPairReport], dict[str, dict[str, float]]]:
    """Every ordered pair of ``clips`` (video of one, sound of another); returns the pair reports
    and the pooled rows (aperture correlation over all pairs' frames concatenated; the other
    metrics averaged over pairs)."""
    say = progress or (lambda msg: None)
    if len(clips) < 2:
        raise InputError("eval --mode dub needs at least two clips of the same person (the video of one is dubbed "
                         "with the sound of another).")
    reports = []
    with tempfile.TemporaryDirectory(prefix="facecast-dubeval-") as d:
        tmp = Path(d)
        truths = {}
        for c in clips:
            say(f"{c.stem}: tracking the real mouth")
            truths[c] = _truth(c, options, tmp)
        for b in clips:
            for a in clips:
                if a != b:
                    reports.append(evaluate_pair(a, truths[b], options, tmp, say))
    return reports, pooled(reports)


def pooled(reports: list[DubPairReport]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in ROWS:
        xs = [r.series["real" if row == "real" else row][:r.num_frames] for r in reports if row in r.rows]
        ys = [r.series["real"][:len(x)] for r, x in zip(reports, xs)]
        if not xs:
            continue
        n = [min(len(x), len(y)) for x, y in zip(xs, ys)]
        x = np.concatenate([v[:k] for v, k in zip(xs, n)])
        y = np.concatenate([v[:k] for v, k in zip(ys, n)])
        ok = np.isfinite(x) & np.isfinite(y)
        agg = {"aperture_corr_pooled": float(np.corrcoef(x[ok], y[ok])[0, 1]) if ok.sum() > 3 else float("nan")}
        keys = sorted({k for r in reports for k in r.rows.get(row, {})})
        for k in keys:
            vals = [r.rows[row][k] for r in reports if row in r.rows and k in r.rows[row]]
            vals = [v for v in vals if isinstance(v, float) and math.isfinite(v)]
            agg[k] = float(np.mean(vals)) if vals else float("nan")
        out[row] = agg
    return out


_LABELS = {
    "aperture_corr": "mouth aperture r vs real (lag 0)", "aperture_corr_near": "  ... best at lag -1, 0 or +1",
    "aperture_corr_best": "  ... at best lag",
    "aperture_lag": "  best lag (+ = late), frames", "lmd": "mouth landmark distance (IOD)",
    "closed_in_silence": "closed mouth in silence", "aperture_corr_pooled": "pooled aperture r (lag 0)",
    "psnr_outside_mask": "PSNR outside mask vs source (dB)", "sharpness_ratio": "mouth sharpness / source's",
    "identity": "identity distance to source (dlib)", "identity_source_spread": "  source's own spread",
    "jitter": "non-mouth jitter (IOD/frame^2)", "jitter_source": "  source's own jitter",
    "mouth_change_ratio": "mouth frame-to-frame change / source's",
    "asked_corr": "link 1: asked gap r vs real (lag 0)", "asked_corr_best": "  ... at best lag",
    "asked_lag": "  best lag (+ = late), frames", "drawn_vs_asked": "link 2: drawn picture's gap r vs asked",
    "rendered_vs_asked": "link 3: measured output gap r vs asked", "rendered_vs_drawn": "  ... vs drawn picture's",
}


def markdown_dub(reports: list[DubPairReport], pool: dict[str, dict[str, float]]) -> str:
    """Pooled table, then one line per pair for the lip-sync rows."""
    keys = ["aperture_corr_pooled", *LIPSYNC, *LINKS, "psnr_outside_mask", "sharpness_ratio", "mouth_change_ratio",
            "identity", "identity_source_spread", "jitter", "jitter_source"]
    rows = [r for r in ROWS if r in pool]
    lines = ["| metric | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for k in keys:
        vals = [pool[r].get(k, float("nan")) for r in rows]
        if all(not math.isfinite(v) for v in vals):
            continue
        fmt = "{:+.0f}" if k.endswith("_lag") else "{:.1f}" if k.startswith("psnr") else "{:.4f}" if k.startswith(
            "jitter") else "{:.3f}"
        lines.append(f"| {_LABELS[k]} | " + " | ".join("-" if not math.isfinite(v) else fmt.format(v) for v in vals)
                     + " |")
    lines += ["", "| video <- sound | " + " | ".join(f"{r} r0 / best (lag) / LMD" for r in rows) + " |",
              "|---|" + "---|" * len(rows)]
    for p in reports:
        cells = []
        for r in rows:
            m = p.rows.get(r, {})
            cells.append(f"{m.get('aperture_corr', float('nan')):.2f} / {m.get('aperture_corr_best', float('nan')):.2f} "
                         f"({m.get('aperture_lag', float('nan')):+.0f}) / {m.get('lmd', float('nan')):.3f}")
        lines.append(f"| {Path(p.video).stem} <- {Path(p.audio).stem} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_eval(clips: list[Path], options: EvalOptions, json_path: Path | None, markdown: Path | None, out, err,
             machine: dict) -> None:
    """`facecast eval --mode dub`: evaluate, print the tables, write JSON / Markdown."""
    import json
    import sys

    reports, pool = evaluate_dub(clips, options, progress=lambda msg: err.print(f"[dim]{msg}[/]"))
    text = markdown_dub(reports, pool)
    out.print(text, highlight=False, markup=False)
    for p in reports:
        out.print(f"{Path(p.video).stem} <- {Path(p.audio).stem}: {p.report}", highlight=False, markup=False)
        for note in p.notes:
            out.print(f"  note: {note}", highlight=False, markup=False)
    command = "facecast " + " ".join(sys.argv[1:])
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"command": command, "machine": machine, "pairs": [p.to_json() for p in reports],
                                         "pooled": pool}, indent=1, default=str))
        err.print(f"wrote [bold]{json_path}[/]")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(f"`{command}`\n\n{text}\n")
        err.print(f"wrote [bold]{markdown}[/]")
