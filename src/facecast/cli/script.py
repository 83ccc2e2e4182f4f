"""`facecast script`: a show script with several speakers -> one MP4 (and subtitles)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..interrupts import interrupt_code
from .app import app, err, fail, flag_error, number, setup_logging

EXAMPLE_OUTPUT = Path("out/show.mp4")

SCRIPT_FLAGS = {
    "ScriptOptions.fps": "--fps",
    "ScriptOptions.layout": "--layout", "ScriptOptions.subtitles": "--subtitles",
    "ScriptOptions.min_shot_s": "--min-shot", "ScriptOptions.gap_s": "--gap",
    "ScriptOptions.video_loop_s": "--video-loop",
    "MotionOptions.seed": "--seed", "MotionOptions.head_motion": "--head-motion",
    "MotionOptions.expressiveness": "--expressiveness", "EncodeOptions.crf": "--crf",
    "EncodeOptions.preset": "--preset",
}
"""The option dataclasses' fields that `script` sets from a flag: their range errors name the flag."""


def parse_size(text: str | None) -> tuple[int | float | str, int | float | str] | None:
    """--size WIDTHxHEIGHT -> (width, height) as typed numbers (ScriptOptions checks ranges)."""
    from ..errors import OptionError

    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2:
        raise OptionError("--size", text, "WIDTHxHEIGHT in pixels, each an even whole number in 64 ... 4096 "
                          "(e.g. 1280x720)")
    try:
        return number(parts[0]), number(parts[1])
    except ValueError:
        raise OptionError("--size", text, "WIDTHxHEIGHT in pixels, each an even whole number in 64 ... 4096 "
                          "(e.g. 1280x720)") from None


def script_options(size, fps, layout, captions, subtitles, burn, min_shot, gap, device, seed, crf, preset,
                   head_motion, expressiveness, video_loop=30.0):
    """ScriptOptions from the flags; OptionError naming the flag and its range (before any work)."""
    from ..errors import OptionError
    from ..options import EncodeOptions, MotionOptions, RenderOptions
    from ..show import ScriptOptions

    wh = parse_size(size)
    try:
        return ScriptOptions(width=wh[0] if wh else None, height=wh[1] if wh else None, fps=fps, layout=layout,
                             captions=captions, subtitles=subtitles, burn_subtitles=burn, min_shot_s=min_shot,
                             gap_s=gap, video_loop_s=video_loop, motion=MotionOptions(seed=seed, head_motion=head_motion,
                                                             expressiveness=expressiveness),
                             render=RenderOptions(device=device), encode=EncodeOptions(crf=crf, preset=preset))
    except OptionError as exc:
        if exc.option in ("ScriptOptions.width", "ScriptOptions.height"):
            raise OptionError("--size", size, "WIDTHxHEIGHT in pixels, each an even whole number in 64 ... 4096 "
                              "(e.g. 1280x720)") from None
        raise flag_error(exc, SCRIPT_FLAGS) from None


def run_script(script, output: Path, options) -> None:
    """Render under a progress bar (lines of the script), then report what was written."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..media import probe_mp4
    from ..show import parse_script, render_script
    from ..show.subtitles import subtitle_paths

    t0 = time.perf_counter()
    parsed = parse_script(script)
    with Progress(TextColumn("[bold]rendering show"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
                  TextColumn("{task.fields[done]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("show", total=len(parsed.lines), done="")

        def progress(status) -> None:
            bar.update(task, completed=status.line - 1, done=f"{status.seconds:7.1f} s of video")

        path = render_script(parsed, output, options, progress=progress)
        bar.update(task, completed=len(parsed.lines))
    info = probe_mp4(path)
    secs = time.perf_counter() - t0
    subs = [str(p) for p in subtitle_paths(path, options.subtitles)]
    err.print(f"wrote [bold]{path}[/]: {info['num_frames']} frames, {info['video_duration']:.2f} s, "
              f"{info['width']}x{info['height']}, {len(parsed.lines)} lines in {secs:.1f} s "
              f"(RTF {secs / max(info['video_duration'], 1e-9):.2f})" + (f"; subtitles {', '.join(subs)}" if subs else ""))


@app.command("script")
def script_cmd(
    script: Optional[Path] = typer.Argument(None, help="The show script (.md/.txt): front matter with the speakers, "
                                            "then NAME: text lines (docs/scripts.md)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .mp4 path (with --example: "
                                          f"default {EXAMPLE_OUTPUT})."),
    example: bool = typer.Option(False, "--example", help="Render the example show that ships with facecast."),
    subtitles: str = typer.Option("none", "--subtitles", help="Write subtitles beside the video: none, srt, vtt or both."),
    burn: bool = typer.Option(False, "--burn-subtitles", help="Also draw the subtitles into the picture."),
    size: Optional[str] = typer.Option(None, "--size", help="WIDTHxHEIGHT (default: the script's size:, else 1280x720)."),
    fps: float = typer.Option(25.0, "--fps"),
    layout: Optional[str] = typer.Option(None, "--layout", help="split, solo or grid (default: the script's layout:)."),
    captions: Optional[bool] = typer.Option(None, "--captions/--no-captions", help="Name captions (default: the script's captions:)."),
    min_shot: float = typer.Option(2.0, "--min-shot", help="solo: seconds a shot lasts at least before a cut, 0-60."),
    gap: float = typer.Option(0.25, "--gap", help="Seconds of silence between lines, 0-5."),
    video_loop: float = typer.Option(30.0, "--video-loop", help="Video faces: seconds of the video played back and "
                                     "forth, 1-600."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, "--seed", parser=number, metavar="INTEGER", help="Seed for blinks, nods and head motion."),
    crf: int = typer.Option(23, "--crf", parser=number, metavar="INTEGER", help="H.264 quality, 0-51 (lower is better)."),
    preset: str = typer.Option("veryfast", "--preset", help="libx264 preset (ultrafast ... veryslow)."),
    head_motion: float = typer.Option(1.0, "--head-motion", help="Head motion gain, 0-3 (0 = still)."),
    expressiveness: float = typer.Option(1.0, "--expressiveness", help="Mouth motion gain, 0-3 (1 = natural)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Script with several speakers -> one video: each line spoken by its speaker's voice and
    face, the others listening; split, grid or solo layouts; subtitles with word times."""
    setup_logging(verbose)
    from ..errors import FacecastError, InputError

    try:
        if example == (script is not None):
            raise InputError("script: give a script file or --example (exactly one).")
        if output is None:
            if not example:
                raise InputError("script: give the output video with -o FILE.mp4.")
            output = EXAMPLE_OUTPUT
        options = script_options(size, fps, layout, captions, subtitles, burn, min_shot, gap, device, seed, crf,
                                 preset, head_motion, expressiveness, video_loop)
        if example:
            from ..show import example_script

            script = example_script()
            if output == EXAMPLE_OUTPUT:  # facecast's own default folder; a folder you name must exist
                output.parent.mkdir(parents=True, exist_ok=True)
        run_script(script, output, options)
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(interrupt_code(exc))
