"""The CLI's shared parts: the typer app, the error console, logging, the progress bar, and the
rewording of option errors with their flag names. The commands live beside it (say, live,
quality, twin); `facecast.cli.main` is the entry point."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="facecast: lip-synced talking heads from a portrait and speech, offline.")
err = Console(stderr=True)

DEMO_OUTPUT = Path("out/demo.mp4")
DEMO_TEXT = ("Hello! I am speaking from a single photo. Every word you hear moves my lips, "
             "and when I pause, my mouth rests.")


def quiet_native_logs() -> None:
    # mediapipe's TFLite/absl print INFO lines to stderr from C++; keep the terminal for us.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_time=False, show_path=False)], force=True)


def fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 2))


def flag_error(exc, flags: dict, shown: dict | None = None):
    """An OptionError from the options dataclasses, reworded with the flag that set the field
    (``shown``: the value as typed, where it differs from the field's)."""
    flag = flags.get(exc.option)
    if flag is None:
        return exc
    err = exc.for_flag(flag, (shown or {}).get(flag))
    if flag == "--size":
        err.args = (err.args[0][:-1] + ", or 'portrait'.",)
    return err


def number(text: str) -> int | float:
    """Whole-number flags take any number, so that the options' ranges (not the parser) refuse a
    bad one, with the range: "--crf 23.5" -> 23.5 -> "must be a whole number ..." (or accepted)."""
    x = float(text)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def render_with_progress(label: str, job) -> None:
    """Run ``job(progress) -> path`` under a progress bar (seconds of audio done), then report
    the written file and the real-time factor."""
    import time

    from ..media import probe_mp4

    t0 = time.perf_counter()
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[done]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("say", total=None, done="")

        def progress(done: float, total: float | None) -> None:
            bar.update(task, completed=done, total=total, done=f"{done:6.1f} s of audio")

        path = job(progress)
    info = probe_mp4(path)
    secs = time.perf_counter() - t0
    err.print(f"wrote [bold]{path}[/]: {info['num_frames']} frames, {info['video_duration']:.2f} s, "
              f"{info['width']}x{info['height']} in {secs:.1f} s (RTF {secs / max(info['video_duration'], 1e-9):.2f})")
