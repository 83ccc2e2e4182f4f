"""`facecast say` and `facecast demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..interrupts import interrupt_code
from .app import DEMO_OUTPUT, DEMO_TEXT, app, err, fail, flag_error, number, render_with_progress, setup_logging


SAY_FLAGS = {
    "SayOptions.size": "--size", "SayOptions.fps": "--fps", "SayOptions.face_index": "--face",
    "SayOptions.workers": "--workers", "MotionOptions.seed": "--seed", "MotionOptions.head_motion": "--head-motion",
    "MotionOptions.expressiveness": "--expressiveness", "MotionOptions.expression": "--expression",
    "EncodeOptions.crf": "--crf",
    "EncodeOptions.preset": "--preset", "EncodeOptions.workers": "--encoders",
}
"""The option dataclasses' fields that `say` sets from a flag: their range errors name the flag."""


def _say_options(size: str, fps: float, face: Optional[int], device: str, seed: int, crf: int, preset: str,
                 head_motion: float, expressiveness: float, *, workers: int = 0, encoders: int = 1, words: bool = True,
                 expression: str = "neutral"):
    """SayOptions from `say`'s flags; OptionError naming the flag and its range (before any work)."""
    from ..errors import OptionError
    from ..options import EncodeOptions, MotionOptions, RenderOptions, SayOptions

    try:
        size_px = None if size == "portrait" else number(size)
    except ValueError:
        size_px = size  # not a number: SayOptions says what --size takes
    try:
        return SayOptions(size=size_px, fps=fps, face_index=face, workers=workers, words=words,
                          motion=MotionOptions(seed=seed, head_motion=head_motion, expressiveness=expressiveness,
                                               expression=expression),
                          render=RenderOptions(device=device),
                          encode=EncodeOptions(crf=crf, preset=preset, workers=encoders))
    except OptionError as exc:
        raise flag_error(exc, SAY_FLAGS, {"--size": size}) from None


def _run_say(face, output: Path, text, audio, transcript, options) -> None:
    from ..pipeline import say

    render_with_progress("rendering", lambda progress: say(face, output, text=text, audio=audio,
                                                            transcript=transcript, options=options,
                                                            progress=progress))


@app.command("say")
def say_cmd(
    portrait: Optional[str] = typer.Argument(None, help="Portrait image (jpg/png/webp ...) with one clearly visible "
                                             "face, or a .twin file (from `facecast twin train`)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .mp4 path."),
    twin: Optional[Path] = typer.Option(None, "--twin", help="A .twin file (from `facecast twin train`); the same as giving it as the portrait."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="Text to speak (English, bundled Piper voice)."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="Speech audio file (any format FFmpeg decodes)."),
    transcript: Optional[str] = typer.Option(None, "--transcript", help="What the audio says (better alignment)."),
    size: str = typer.Option("512", "--size", help="Output side in pixels, or 'portrait' to keep the photo's framing."),
    fps: float = typer.Option(25.0, "--fps"),
    face: Optional[int] = typer.Option(None, "--face", parser=number, metavar="INTEGER",
                                       help="Which face to animate, 0-based from the left."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, "--seed", parser=number, metavar="INTEGER", help="Seed for blinks and head motion."),
    crf: int = typer.Option(23, "--crf", parser=number, metavar="INTEGER", help="H.264 quality, 0-51 (lower is better)."),
    preset: str = typer.Option("veryfast", "--preset", help="libx264 preset (ultrafast ... veryslow)."),
    head_motion: float = typer.Option(1.0, "--head-motion", help="Head motion gain, 0-3 (0 = still)."),
    expressiveness: float = typer.Option(1.0, "--expressiveness", help="Mouth motion gain, 0-3 (1 = natural)."),
    expression: str = typer.Option("neutral", "--expression", help="The face's mood: neutral, smile, serious, surprised or sad."),
    words: bool = typer.Option(True, "--words/--no-words", help="Audio without a transcript: also recognise "
                               "English words for the mouth (better lip sync, ~4x the alignment CPU)."),
    workers: int = typer.Option(0, "--workers", parser=number, metavar="INTEGER",
                                help="Phone-recognition worker processes (many-core machines)."),
    encoders: int = typer.Option(1, "--encoders", parser=number, metavar="INTEGER", help="H.264 encoders in parallel threads, each on its own "
                                 "2 s segments (many-core machines; 1 = one encoder)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Portrait (or twin) + text or audio -> lip-synced talking-head MP4 (H.264 + AAC)."""
    setup_logging(verbose)
    from ..errors import FacecastError, InputError

    try:
        if (text is None) == (audio is None):
            raise InputError("say: give either --text \"...\" or --audio FILE (exactly one).")
        if transcript is not None and audio is None:
            raise InputError("--transcript goes with --audio (with --text the words are already known).")
        if (portrait is None) == (twin is None):
            raise InputError("say: give a portrait image or --twin FILE (exactly one).")
        options = _say_options(size, fps, face, device, seed, crf, preset, head_motion, expressiveness,
                               workers=workers, encoders=encoders, words=words, expression=expression)
        if twin is not None:
            from ..sources import is_twin_input
            from ..twin.file import load_twin

            if not is_twin_input(twin):
                load_twin(twin)  # --twin names a twin: its loader says what is wrong with this file
        _run_say(portrait if twin is None else twin, output, text, audio, transcript, options)
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(interrupt_code(exc))


@app.command("demo")
def demo_cmd(
    output: Path = typer.Option(DEMO_OUTPUT, "-o", "--output", help="Output .mp4 path."),
    text: str = typer.Option(DEMO_TEXT, "--text", help="What the demo says."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Render a demo from data that ships with the packages: scikit-image's astronaut photo
    (a real portrait) and the bundled Piper voice."""
    setup_logging(False)
    from skimage import data

    from ..errors import FacecastError

    try:
        if output == DEMO_OUTPUT:  # facecast's own default folder; a folder you name must exist
            output.parent.mkdir(parents=True, exist_ok=True)
        options = _say_options("512", 25.0, None, device, 0, 23, "veryfast", 1.0, 1.0)
        _run_say(data.astronaut(), output, text, None, None, options)
    except FacecastError as exc:
        fail(exc)
