"""`facecast dub`: re-lip-sync a video to new speech."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..interrupts import interrupt_code
from .app import app, err, fail, flag_error, number, setup_logging

DUB_FLAGS = {
    "DubOptions.face_index": "--face", "DubOptions.mouth": "--mouth", "DubOptions.mouth_model": "--mouth-model", "DubOptions.workers": "--workers",
    "DubOptions.draw_workers": "--draw-workers", "DubOptions.processes": "--processes",
    "EncodeOptions.crf": "--crf", "EncodeOptions.preset": "--preset",
}
"""The option dataclasses' fields that `dub` sets from a flag: their range errors name the flag."""


SETUP_STAGES = {"track (workers)": "tracking the face", "footage": "scanning the video", "calibrate": "measuring the speaker",
                "learn": "learning this speaker's mouth"}
"""What the progress bar says while `dub` prepares (Timings stages before the first frame)."""


@app.command("dub")
def dub_cmd(
    video: Path = typer.Argument(..., help="A video of the person talking (MP4, MOV, MKV, WebM ...)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .mp4 path (not the input video)."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="The new speech (any format FFmpeg decodes)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="The new speech as text (English, bundled voice)."),
    face: Optional[str] = typer.Option(None, "--face", help="Which face to dub, 0-based from the left (default: the largest)."),
    keep_length: bool = typer.Option(False, "--keep-length", help="Speech shorter than the video: keep the rest of "
                                     "the video with a closed mouth (default: the output ends with the speech)."),
    mouth: str = typer.Option("auto", "--mouth", help="auto, footage (this video's own mouths) or mesh (warp + painted mouth)."),
    mouth_model: str = typer.Option("auto", "--mouth-model", help="auto (learn this speaker's mouth from the video's "
                                    "own speech where it has >= 10 s and that beats the phones, ~1 s of CPU), "
                                    "learned (always) or phones (the phone-driven model only)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto (the mesh renderer's device)."),
    crf: str = typer.Option("18", "--crf", help="H.264 quality, 0 ... 51 (lower is better; 18 keeps the untouched parts within encoding noise)."),
    preset: str = typer.Option("veryfast", "--preset", help="libx264 preset."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Fit the mouth to the speaker's own speech in the video."),
    words: bool = typer.Option(True, "--words/--no-words", help="Also recognise English words for the mouth (better sync, more CPU)."),
    workers: str = typer.Option("1", "--workers", help="Phone-recognition worker processes, 0 ... 64 (0 = in the main process)."),
    draw_workers: str = typer.Option("0", "--draw-workers", help="Threads that draw the mouths, 0 ... 64 (0 = auto: "
                                     "the cores minus one, at most 4, where there are more than 2, else 1). The frames are "
                                     "the same for any number."),
    processes: str = typer.Option("0", "--processes", help="Worker processes that decode, draw and encode spans of "
                                  "the video, 0 ... 64 (0 = auto: the cores minus one, at most 15, on machines with 8 "
                                  "or more; else 1). They track the face in pieces first (unless --track); spans need "
                                  "--audio and a video the speech does not outlast."),
    track: Optional[Path] = typer.Option(None, "--track", help="The video's face track made by `facecast dub-track` "
                                         "(no face tracking here: e.g. a machine without mediapipe)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Re-lip-sync a video to new speech: same frames, size and rate; only the lower face changes."""
    setup_logging(verbose)
    from ..errors import FacecastError, InputError, OptionError

    try:
        from ..dubbing.options import DubOptions
        from ..options import EncodeOptions, RenderOptions

        if (text is None) == (audio is None):
            raise InputError("dub: give either --audio FILE or --text \"...\" (exactly one).")
        try:
            face_n, crf_n, workers_n, draw_n, proc_n = (
                None if face is None else _num(face, "--face"), _num(crf, "--crf"), _num(workers, "--workers"),
                _num(draw_workers, "--draw-workers"), _num(processes, "--processes"))
            options = DubOptions(face_index=face_n, keep_length=keep_length, mouth=mouth, mouth_model=mouth_model, calibrate=calibrate,
                                 words=words, workers=workers_n, draw_workers=draw_n, processes=proc_n,
                                 render=RenderOptions(device=device),
                                 encode=EncodeOptions(crf=crf_n, preset=preset))
        except OptionError as exc:
            raise flag_error(exc, DUB_FLAGS, {"--face": face, "--crf": crf, "--workers": workers,
                                                "--draw-workers": draw_workers, "--processes": processes}) from None
        run_dub(video, output, audio, text, options, track)
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(interrupt_code(exc))


def _num(text: str, flag: str):
    from ..errors import InputError

    try:
        return number(text)
    except ValueError:
        raise InputError(f"{flag} {text}: not a number.") from None


@app.command("dub-track")
def dub_track_cmd(
    video: Path = typer.Argument(..., help="The video `facecast dub --track` will dub."),
    output: Path = typer.Option(..., "-o", "--output", help="The track file to write (.npz)."),
    face: Optional[str] = typer.Option(None, "--face", help="Which face, 0-based from the left (default: the largest)."),
    processes: str = typer.Option("0", "--processes", help="Worker processes that track pieces of the video, 0 ... 64 "
                                  "(0 = auto: the cores minus one, at most 15, on machines with 8 or more; else 1)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Track the face through a video once, for `facecast dub --track` (here or on another machine)."""
    setup_logging(verbose)
    from ..errors import FacecastError, NoFaceError, OptionError

    try:
        from ..dubbing.options import DubOptions
        from ..dubbing.trackfile import save_track, track_video_file
        from ..dubbing.trackspans import track_file_in_pieces
        from ..outputs import check_output_file

        face_n = None if face is None else _num(face, "--face")
        try:
            proc_n = DubOptions(face_index=face_n, processes=_num(processes, "--processes")).process_count()
        except OptionError as exc:
            raise flag_error(exc, DUB_FLAGS, {"--face": face, "--processes": processes}) from None
        out = check_output_file(output, suffixes=(".npz",), inputs=[("video", video)], what="track file")
        src = _open_video(video)
        with Progress(TextColumn("[bold]tracking"), BarColumn(), TextColumn("{task.fields[done]}"),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("track", total=src.num_frames, done="")

            def show(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total, done=f"{done} frames")

            if proc_n > 1 and src.num_frames:
                track = track_file_in_pieces(src, proc_n, face_index=face_n, progress=show)
            else:
                track = track_video_file(src, face_index=face_n, progress=show)
        if not track.detected.any():
            raise NoFaceError(f"{video}: no face found in any frame. dub needs a video where the speaker's face is "
                              "visible (frontal, at least ~64 pixels wide).")
        save_track(track, out)
        err.print(f"wrote [bold]{out}[/]: {track.num_frames} frames, face in {int(track.has_face.sum())}, "
                  f"{int(track.cuts.sum())} shot cuts", highlight=False)
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(interrupt_code(exc))


def _open_video(video: Path):
    from ..dubbing.pipeline import open_dub_video

    return open_dub_video(video)


def run_dub(video: Path, output: Path, audio: Path | None, text: str | None, options, track: Path | None = None
            ) -> None:
    """dub under a progress bar, then one line on the written file and one on what was done."""
    from ..dubbing.pipeline import dub
    from ..dubbing.source import DubReport
    from ..media import probe_mp4

    from ..timing import Timings

    report = DubReport()
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("dubbing", total=None, done="")

        def progress(done: float, total: float | None) -> None:
            bar.update(task, description="dubbing", completed=done, total=total, done=f"{done:6.1f} s of speech")

        def stage(name: str) -> None:  # what the job does before its first frame
            if name in SETUP_STAGES:
                bar.update(task, description=SETUP_STAGES[name])

        path = dub(video, output, audio=audio, text=text, options=options, progress=progress, report=report,
                   track=track, timings=Timings(on_stage=stage))
    info = probe_mp4(path)
    secs = time.perf_counter() - t0
    err.print(f"wrote [bold]{path}[/]: {info['num_frames']} frames, {info['video_duration']:.2f} s, "
              f"{info['width']}x{info['height']} in {secs:.1f} s (RTF {secs / max(info['video_duration'], 1e-9):.2f})")
    err.print(report.text(), highlight=False)
    for note in report.notes:
        err.print(f"note: {note}", highlight=False)
