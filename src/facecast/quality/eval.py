"""`facecast eval`: regenerate real talking videos and compare them with the truth.

One clip at a time: prepare it (clips: decode, track, pick the portrait frame), generate every
row (rows: real ceiling, still floor, loudness baseline, facecast), track and score each row
against the real clip (metrics), judge the rows (report.verdicts, and stats' lip-sync margins
with intervals), then write tables, JSON and plots (report, plots). The definitions of every
metric are in metrics.py, of the margins in stats.py.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable

from .. import face
from .clips import MODES, expand_clips
from .metrics import identity_model, identity_unavailable_reason, score_row
from .options import EvalOptions
from .plots import crop_box, sheet_indices, thumb, write_plots
from .report import ClipReport, RowResult, lipsync_margins, verdicts
from .rows import GENERATORS

__all__ = ["evaluate", "evaluate_clip"]


def _row_order(options: EvalOptions) -> list[str]:
    names = [b for b in ("real", "still", "loudness") if b in options.baselines]
    return names + ["facecast"]


def evaluate_clip(path: str | Path, options: EvalOptions = EvalOptions(),
                  progress: Callable[[str], None] | None = None) -> ClipReport:
    """Regenerate one clip with every row and score it (see the module docstring)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    say(f"{Path(path).name}: decoding and tracking")
    clip = MODES[options.mode](path, options)
    notes = list(clip.notes)
    ident = identity_model() if options.identity else None
    if options.identity and ident is None:
        notes.append(identity_unavailable_reason() or "identity skipped")
    portrait_emb = ident.embed(clip.portrait.image, clip.portrait.face.points) if ident else None
    thumb_idx = sheet_indices(clip)
    boxes = [crop_box(clip.points[i], clip.frames.shape[1:3]) for i in thumb_idx]
    rows: dict[str, RowResult] = {}
    for name in _row_order(options):
        gen = GENERATORS[name](options)
        say(f"{clip.name}: {name} ({gen.description})")
        t = time.perf_counter()
        frames = gen.generate(clip)
        gen_s = time.perf_counter() - t
        if frames.shape[1:] != clip.frames.shape[1:]:
            raise AssertionError(f"{name}: frames are {frames.shape[1:]}, the clip's {clip.frames.shape[1:]}")
        if name == "real":
            points, found = clip.points, clip.found
        else:
            # Frame by frame: the still row is a broadcast view, never materialised.
            points, found = face.track_video(iter(frames), fps=clip.fps, smooth=False)
        if not found.all():
            notes.append(f"{name}: face not found in {int((~found).sum())} of {len(found)} frames")
        metrics = score_row(clip, frames, points, found, ident, portrait_emb)
        thumbs = [thumb(frames[min(i, len(frames) - 1)], b) for i, b in zip(thumb_idx, boxes)] if len(frames) else []
        mm = face.mouth_metrics(points)
        rows[name] = RowResult(name, gen.description, metrics, int(len(frames)), gen_s,
                               getattr(gen, "timings", {}), mm["mouth_open"],
                               (mm["eye_open_left"] + mm["eye_open_right"]) / 2, thumbs)
        del frames
    report = ClipReport(
        clip=clip.name, path=str(clip.path), fps=clip.fps, num_frames=clip.num_frames, seconds=clip.seconds,
        size=(int(clip.frames.shape[2]), int(clip.frames.shape[1])), source_size=clip.source_size,
        portrait_index=clip.portrait_index, rows=rows, verdicts=verdicts(rows), notes=notes,
        options=_options_json(options), energy=clip.energy, voiced=clip.voiced,
        margins=lipsync_margins(rows, clip.fps),
    )
    if options.plot_dir is not None:
        report.plots = write_plots(report, clip, Path(options.plot_dir))
    say(f"{clip.name}: done in {time.perf_counter() - t0:.0f} s")
    return report


def evaluate(paths: Iterable[str | Path], options: EvalOptions = EvalOptions(),
             progress: Callable[[str], None] | None = None) -> list[ClipReport]:
    """evaluate_clip for each clip (a folder stands for the videos in it)."""
    return [evaluate_clip(p, options, progress) for p in expand_clips(paths)]


def _options_json(options: EvalOptions) -> dict:
    d = dataclasses.asdict(options)
    d["plot_dir"] = str(options.plot_dir) if options.plot_dir is not None else None
    d["baselines"] = list(options.baselines)
    d["twin"] = str(options.twin) if options.twin is not None else None
    return d
