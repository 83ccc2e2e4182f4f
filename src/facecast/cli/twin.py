"""`facecast twin train`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..interrupts import interrupt_code
from .app import app, err, fail, flag_error, number, quiet_native_logs, setup_logging


twin_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Person-specific photoreal twins: train from minutes of video, then `say --twin`.")
app.add_typer(twin_app, name="twin")


TWIN_TRAIN_FLAGS = {"PrepOptions.crop_px": "--crop", "RenderTrainOptions.steps": "--steps",
                    "TwinTrainOptions.holdout": "--holdout"}


@twin_app.command("train")
def twin_train_cmd(
    videos: list[Path] = typer.Argument(..., help="1-5 minutes of one person talking (MP4 files)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .twin file."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto (training wants a GPU)."),
    minutes: float = typer.Option(6.0, "--minutes", help="Time budget for the renderer's training."),
    steps: int = typer.Option(6000, "--steps", parser=number, metavar="INTEGER", help="Most renderer steps (the budget in --minutes may end it sooner)."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="VIDEO:FRACTION kept out of training, e.g. talk2.mp4:0.2."),
    size: int = typer.Option(336, "--crop", parser=number, metavar="INTEGER", help="Mouth-crop side in pixels (336 = a 512-px face's density)."),
    tiny: bool = typer.Option(False, "--tiny", help="A tiny network and short training (smoke tests, CPU)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a twin: track -> prepare -> mouth model -> renderer -> .twin file. Resumable:
    re-running the same command picks up the cached tracks and the last checkpoint."""
    setup_logging(verbose)
    quiet_native_logs()
    import json

    from ..errors import FacecastError, InputError, OptionError
    from ..options import Range
    from ..twin import TwinTrainOptions, train_twin
    from ..twin.options import PrepOptions
    from ..twin.net import RenderConfig
    from ..twin.options import RenderTrainOptions

    try:
        hold = None
        if holdout is not None:
            name, _, frac = holdout.rpartition(":")
            try:
                hold = (name, float(frac))
            except ValueError:
                raise InputError(f"--holdout {holdout}: use VIDEO:FRACTION, e.g. talk2.mp4:0.2") from None
            if not name or not 0 < hold[1] < 1:
                raise InputError(f"--holdout {holdout}: use VIDEO:FRACTION with 0 < FRACTION < 1")
        # The renderer's time budget is RenderTrainOptions.seconds (> 0 ... a week), in minutes here.
        Range(0, 10080, "minutes", lo_open=True).check("--minutes", minutes)
        try:
            cfg = RenderConfig(size=size, widths=(16, 16, 32) if tiny else RenderConfig().widths,
                               mid_blocks=1 if tiny else 2)
            options = TwinTrainOptions(
                device=device,
                prep=PrepOptions(crop_px=size, min_speech_s=3.0 if tiny else PrepOptions().min_speech_s),
                render=RenderTrainOptions(config=cfg, steps=steps, seconds=minutes * 60, batch=4 if tiny else 16),
                mouth_steps=30 if tiny else None,
                holdout=hold,
            )
        except OptionError as exc:
            raise flag_error(exc, TWIN_TRAIN_FLAGS) from None
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: float, total: float | None) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, done="")
                bar.update(tasks[stage], completed=done, total=total, done=f"{done:.0f}/{total:.0f}" if total else "")

            report = train_twin(videos, output, options, progress=progress)
        s = report["seconds"]
        err.print(f"wrote [bold]{output}[/] ({output.stat().st_size / 2**20:.1f} MiB, sha256 {report['sha256'][:12]}): "
                  f"{report['summary']['usable_seconds']:.0f} s of footage, {report['summary']['speech_seconds']:.0f} s "
                  f"of speech; " + ", ".join(f"{k} {v:.0f} s" for k, v in s.items()))
        if verbose:
            err.print(json.dumps(report, indent=1, default=str))
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: run the same command again to resume")
        raise typer.Exit(interrupt_code(exc))
