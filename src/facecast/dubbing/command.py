"""`facecast dub` on the command line (registered by cli.py). Imports nothing heavy at import
time; errors facecast raises on purpose print as one `error:` line and exit with code 2."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err = Console(stderr=True)


def dub_cmd(
    video: Path = typer.Argument(..., help="A video of the person talking (MP4, MOV, MKV, WebM ...)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .mp4 path (not the input video)."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="The new speech (any format FFmpeg decodes)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="The new speech as text (English, bundled voice)."),
    face: Optional[int] = typer.Option(None, "--face", help="Which face to dub, 0-based from the left (default: the largest)."),
    keep_length: bool = typer.Option(False, "--keep-length", help="Speech shorter than the video: keep the rest of "
                                     "the video with a closed mouth (default: the output ends with the speech)."),
    mouth: str = typer.Option("auto", "--mouth", help="auto, footage (this video's own mouths) or mesh (warp + painted mouth)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto (the mesh renderer's device)."),
    crf: int = typer.Option(18, "--crf", help="H.264 quality (lower is better; 18 keeps the untouched parts within encoding noise)."),
    preset: str = typer.Option("veryfast", "--preset", help="libx264 preset."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Fit the mouth to the speaker's own speech in the video."),
    words: bool = typer.Option(True, "--words/--no-words", help="Also recognise English words for the mouth (better sync, more CPU)."),
    workers: int = typer.Option(1, "--workers", help="Phone-recognition worker processes (0 = in the main process)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Re-lip-sync a video to new speech: same frames, size and rate; only the lower face changes."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_time=False, show_path=False)], force=True)
    from ..errors import FacecastError, InputError

    try:
        from ..options import DubOptions, EncodeOptions, RenderOptions

        if (text is None) == (audio is None):
            raise InputError("dub: give either --audio FILE or --text \"...\" (exactly one).")
        if not 0 <= crf <= 51:
            raise InputError(f"--crf {crf}: must be between 0 and 51.")
        options = DubOptions(face_index=face, keep_length=keep_length, mouth=mouth, calibrate=calibrate, words=words,
                             workers=workers, render=RenderOptions(device=device),
                             encode=EncodeOptions(crf=crf, preset=preset))
        run_dub(video, output, audio, text, options)
    except FacecastError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(130)


def run_dub(video: Path, output: Path, audio: Path | None, text: str | None, options) -> None:
    """dub under a progress bar, then one line on the written file and one on what was done."""
    from ..media import probe_mp4
    from .pipeline import dub
    from .source import DubReport

    report = DubReport()
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]dubbing"), BarColumn(), TextColumn("{task.fields[done]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("dub", total=None, done="")

        def progress(done: float, total: float | None) -> None:
            bar.update(task, completed=done, total=total, done=f"{done:6.1f} s of speech")

        path = dub(video, output, audio=audio, text=text, options=options, progress=progress, report=report)
    info = probe_mp4(path)
    secs = time.perf_counter() - t0
    err.print(f"wrote [bold]{path}[/]: {info['num_frames']} frames, {info['video_duration']:.2f} s, "
              f"{info['width']}x{info['height']} in {secs:.1f} s (RTF {secs / max(info['video_duration'], 1e-9):.2f})")
    err.print(report.text(), highlight=False)
    for note in report.notes:
        err.print(f"note: {note}", highlight=False)
