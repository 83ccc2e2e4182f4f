"""Twin training end to end: ``train_twin(videos, output, options)`` reads as its passes:

1. track    face-mesh landmarks of every frame (CPU, cached in the work folder; ``prepare``)
2. prepare  checks (no face, too small, too little speech), cuts, mouth crops, speech map
3. mouth    audio -> mouth-shape model of this person (``facecast.twin.mouth``)
4. render   sketch + reference -> lower-face U-Net (``facecast.twin.net``, trained by
            ``facecast.twin.train``), resumable
5. package  reference crop, background loop, config and hash into one .twin file (``file``)

``Twin.load(path)`` and ``say_twin(...)`` (``facecast.twin.generate``) use the result.

Inputs and the output path are checked before stage 1. The work folder (OUTPUT.twin.work: track
caches, the renderer checkpoint) makes an interrupted run resume; after a failure
``drop_work_folder`` decides whether it stays (the rule is in its docstring and docs/errors.md).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facecast.device import resolve_device
from facecast.media import Mp4Writer
from facecast.errors import InputError
from facecast.outputs import check_output_file
from facecast.twin.file import TwinData, save_twin
from facecast.twin.mouth import calibrate_gain, train_mouth
from facecast.twin.options import TwinTrainOptions
from facecast.twin.prepare import ClipTrack, Footage, decode_all, load_tracks, prepare, save_tracks, track_clip
from facecast.twin.train import pick_reference, train_renderer
from facecast.types import VideoFrames

__all__ = ["Progress", "drop_work_folder", "fit_mouth", "holdout_mask", "mouth_clips", "train_twin"]

Progress = Callable[[str, float, float | None], None]  # (stage, done, total)


def holdout_mask(footage: Footage, holdout: tuple[str, float] | None) -> np.ndarray:
    """bool [N]: frames of ``footage`` in the held-out tail of the named clip."""
    held = np.zeros(footage.num_frames, bool)
    if holdout is None:
        return held
    name, frac = holdout
    names = [Path(c["path"]).name for c in footage.clips]
    stems = [Path(c["path"]).stem for c in footage.clips]
    if name in names:
        ci = names.index(name)
    elif name in stems:
        ci = stems.index(name)
    else:
        raise InputError(f"--holdout {name}: not one of the training videos ({', '.join(names)}).")
    n = int(footage.frame[footage.clip == ci].max()) + 1  # the clip's length in frames
    return (footage.clip == ci) & (footage.frame >= int(round((1 - frac) * n)))


def _track_all(videos: list[Path], work: Path, progress: Progress | None) -> list[ClipTrack]:
    tracks = []
    for i, v in enumerate(videos):
        st = v.stat()
        cache = work / f"track-{v.stem}-{st.st_size}-{int(st.st_mtime)}.npz"
        if cache.exists():
            tracks.append(load_tracks(cache, media_dir=v.parent)[0])
        else:
            t = track_clip(v)
            save_tracks(cache, [t])
            tracks.append(t)
        if progress:
            progress("track", i + 1, len(videos))
    return tracks


def mouth_clips(footage: Footage, train: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Per clip (audio16k, fps, mouth [T,53,2]) with NaN on frames not to learn from."""
    out = []
    for ci, c in enumerate(footage.clips):
        sel = np.flatnonzero((footage.clip == ci) & train)
        if len(sel) == 0:
            continue
        n = int(footage.frame[footage.clip == ci].max()) + 1
        m = np.full((n, footage.mouth.shape[1], 2), np.nan, np.float32)
        m[footage.frame[sel]] = footage.mouth[sel]
        out.append((c["audio"], float(c["fps"]), m))
    return out


def _background(footage: Footage, train: np.ndarray, max_s: float, work: Path) -> tuple[bytes, np.ndarray, dict]:
    """MP4 bytes of the background loop, its per-frame affines and a description. Picks the
    training segment with the largest face in pixels (sharpest output), then the longest."""
    best, key_best = None, None
    for s in np.unique(footage.segment):
        sel = np.flatnonzero((footage.segment == s) & train)
        if len(sel) < 2:
            continue
        scale = float(np.median(np.abs(footage.affine[sel, 0, 0]) + np.abs(footage.affine[sel, 0, 1])))
        key = (round(scale, 3), -len(sel))  # fewer crop px per source px = bigger face
        if key_best is None or key < key_best:
            best, key_best = sel, key
    if best is None:
        raise InputError("no training footage left for the background loop (all of it is held out).")
    ci = int(footage.clip[best[0]])
    clip = footage.clips[ci]
    fps = float(clip["fps"])
    # Contiguous run from the segment's first frame (held-out frames are at the clip's end).
    take = best[: max(2, int(max_s * fps))]
    frames = decode_all(clip["path"], tuple(clip["size"]))[footage.frame[take]]
    path = work / "background.mp4"
    with Mp4Writer(path, fps=fps, width=frames.shape[2] // 2 * 2, height=frames.shape[1] // 2 * 2, crf=12,
                   preset="medium") as w:
        w.write_video(VideoFrames(torch.from_numpy(np.ascontiguousarray(frames[:, : frames.shape[1] // 2 * 2,
                                                                                 : frames.shape[2] // 2 * 2])), fps, 0))
    data = path.read_bytes()
    path.unlink()
    info = {"clip": Path(clip["path"]).name, "first_frame": int(footage.frame[take[0]]), "frames": len(take),
            "fps": fps, "size": [frames.shape[2] // 2 * 2, frames.shape[1] // 2 * 2]}
    return data, footage.affine[take], info


def fit_mouth(clips, *, steps: int | None = None, folds: int = 3, device: str = "cpu", seed: int = 0,
              progress=None):
    """The twin's mouth stage: ``mouth.train_mouth`` on ``clips`` (see ``mouth_clips``), then, with
    ``folds`` > 0, its output gain from ``mouth.calibrate_gain``. Returns (model, stats)."""
    model, stats = train_mouth(clips, steps=steps, device=device, seed=seed, progress=progress)
    if folds > 0:
        # A fitted mouth under-articulates on new speech (regression to the mean); scale it back
        # by what held-out folds of this footage measure.
        gain, stats["calibration"] = calibrate_gain(clips, model.config, folds=folds, steps=steps, device=device,
                                                    seed=seed)
        model.config = replace(model.config, gain=gain)
        stats["gain"] = gain
    return model, stats


def train_twin(videos: list[str | Path], output: str | Path, options: TwinTrainOptions = TwinTrainOptions(), *,
               progress: Progress | None = None, tracks: list[ClipTrack] | None = None) -> dict:
    """Train a twin from ``videos`` and write it to ``output`` (.twin). Returns the training
    report (per-stage seconds, data summary, losses). ``tracks``: precomputed stage-1 tracks
    (e.g. made on another machine); else they are computed and cached in the work folder."""

    output = Path(output)
    if output.suffix != ".twin":
        raise InputError(f"{output}: the output must end in .twin")
    device = resolve_device(options.device)
    paths = [Path(v) for v in videos]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such video file.")
    check_output_file(output, inputs=[("video", p) for p in paths], what="twin")
    if options.holdout is not None:
        _check_holdout_name(options.holdout[0], paths)
    work = Path(options.work_dir) if options.work_dir else output.with_name(output.name + ".work")
    created = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _train(paths, output, options, device, work, progress, tracks)
    except BaseException as exc:
        drop_work_folder(work, created, exc)
        raise


def _check_holdout_name(name: str, paths: list[Path]) -> None:
    if name not in [p.name for p in paths] + [p.stem for p in paths]:
        raise InputError(f"--holdout {name}: not one of the training videos ({', '.join(p.name for p in paths)}).")


def drop_work_folder(work: Path, created: bool, exc: BaseException) -> None:
    """After a failed run: remove the work folder this run created when nothing in it can help a
    re-run, and keep it when it can.

    The rule: a failure about the input (InputError: unreadable or faceless footage, too little
    speech, a bad --holdout ...) can never train as given, so the folder goes (whatever stage
    was reached). Any other failure (an interrupt, SIGTERM, out of memory, a full disk, a CUDA
    error) is transient: the folder stays when it holds something resumable (a track cache or
    a renderer checkpoint), so that the same command picks up from there. An empty folder goes.
    A work folder that existed before this run (an earlier run's cache) is never removed."""
    if not created:
        return
    resumable = any(work.glob("track-*.npz")) or (work / "render.ckpt").exists()
    if isinstance(exc, InputError) or not resumable:
        shutil.rmtree(work, ignore_errors=True)


def _train(paths: list[Path], output: Path, options: TwinTrainOptions, device, work: Path,
           progress: Progress | None, tracks: list[ClipTrack] | None) -> dict:
    """The stages of ``train_twin`` once its inputs are checked."""
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    if tracks is None:
        tracks = _track_all(paths, work, progress)
    seconds["track"] = time.perf_counter() - t

    t = time.perf_counter()
    footage = prepare(tracks, options.prep, progress=(lambda d, n: progress("prepare", d, n)) if progress else None)
    seconds["prepare"] = time.perf_counter() - t
    train = ~holdout_mask(footage, options.holdout)

    t = time.perf_counter()
    mouth_model, mouth_stats = fit_mouth(
        mouth_clips(footage, train), steps=options.mouth_steps, folds=options.mouth_folds, device=str(device),
        seed=options.seed, progress=(lambda s, n, loss: progress("mouth", s, n)) if progress else None)
    seconds["mouth"] = time.perf_counter() - t

    t = time.perf_counter()
    ropts = replace(options.render, checkpoint=str(work / "render.ckpt"), seed=options.seed)
    net, render_stats = train_renderer(footage, ropts, train_index=np.flatnonzero(train), device=str(device),
                                       progress=(lambda s, n, loss: progress("render", s, n)) if progress else None)
    seconds["render"] = time.perf_counter() - t

    t = time.perf_counter()
    ref = pick_reference(footage, np.flatnonzero(train))
    bg_bytes, bg_affine, bg_info = _background(footage, train, options.background_max_s, work)
    config = {
        "render": net.config.to_json(),
        "mouth": mouth_model.config.to_dict(),
        "crop": {"px": options.prep.crop_px, "iod": footage.crop_iod, "anchor": list(footage.anchor)},
        "background": bg_info,
        "summary": footage.summary | {"videos": [p.name for p in paths], "holdout": options.holdout},
        "training": {"device": str(device), "render": render_stats, "mouth": mouth_stats},
    }
    data = TwinData(render_state=net.state_dict(), mouth_state=mouth_model.state_dict(),
                    reference=torch.from_numpy(footage.crops[ref]), bg_video=bg_bytes,
                    bg_affine=torch.from_numpy(bg_affine), config=config)
    seconds["package"] = time.perf_counter() - t
    config["training"]["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    digest = save_twin(output, data)
    (work / "render.ckpt").unlink(missing_ok=True)
    return {"output": str(output), "sha256": digest, "seconds": config["training"]["seconds"],
            "summary": config["summary"], "render": render_stats, "mouth": mouth_stats, "background": bg_info}
