"""The command line: the only place that parses arguments. Everything below it takes options
dataclasses. Errors facecast raises on purpose print as one line and exit with code 2."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="facecast: lip-synced talking heads from a portrait and speech, offline.")
err = Console(stderr=True)

DEMO_TEXT = ("Hello! I am speaking from a single photo. Every word you hear moves my lips, "
             "and when I pause, my mouth rests.")


def _quiet_native_logs() -> None:
    # mediapipe's TFLite/absl print INFO lines to stderr from C++; keep the terminal for us.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_time=False, show_path=False)], force=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 2))


def _say_options(size: str, fps: float, face: Optional[int], device: str, seed: int, crf: int, preset: str,
                 head_motion: float, expressiveness: float, expression: str = "neutral"):
    from .errors import InputError
    from .options import EncodeOptions, MotionOptions, RenderOptions, SayOptions

    if size == "portrait":
        size_px = None
    else:
        try:
            size_px = int(size)
        except ValueError:
            raise InputError(f"--size {size}: not a number. Use an even pixel size like 512, or 'portrait'.") from None
        if size_px < 64 or size_px > 4096 or size_px % 2:
            raise InputError(f"--size {size}: must be an even number of pixels between 64 and 4096 (H.264 needs even sizes).")
    if not 1 <= fps <= 120:
        raise InputError(f"--fps {fps}: must be between 1 and 120.")
    from .expression import check_expression

    check_expression(expression)
    return SayOptions(size=size_px, fps=fps, face_index=face,
                      motion=MotionOptions(seed=seed, head_motion=head_motion, expressiveness=expressiveness,
                                           expression=expression),
                      render=RenderOptions(device=device), encode=EncodeOptions(crf=crf, preset=preset))


def _render_with_progress(label: str, job) -> None:
    """Run ``job(progress) -> path`` under a progress bar (seconds of audio done), then report
    the written file and the real-time factor."""
    import time

    from .media import probe_mp4

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


def _run_say(face, output: Path, text, audio, transcript, options) -> None:
    from .pipeline import say

    _render_with_progress("rendering", lambda progress: say(face, output, text=text, audio=audio,
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
    face: Optional[int] = typer.Option(None, "--face", help="Which face to animate, 0-based from the left."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, "--seed", help="Seed for blinks and head motion."),
    crf: int = typer.Option(23, "--crf", help="H.264 quality (lower is better)."),
    preset: str = typer.Option("veryfast", "--preset", help="libx264 preset."),
    head_motion: float = typer.Option(1.0, "--head-motion", help="Head motion gain (0 = still)."),
    expressiveness: float = typer.Option(1.0, "--expressiveness", help="Mouth motion gain."),
    expression: str = typer.Option("neutral", "--expression", help="neutral, smile, serious, surprised or sad."),
    words: bool = typer.Option(True, "--words/--no-words", help="Audio without a transcript: also recognise "
                               "English words for the mouth (better lip sync, ~4x the alignment CPU)."),
    workers: int = typer.Option(0, "--workers", help="Phone-recognition worker processes (many-core machines)."),
    encoders: int = typer.Option(1, "--encoders", help="H.264 encoders in parallel threads, each on its own "
                                 "2 s segments (many-core machines; 1 = one encoder)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Portrait (or twin) + text or audio -> lip-synced talking-head MP4 (H.264 + AAC)."""
    _setup_logging(verbose)
    from .errors import FacecastError, InputError

    try:
        if (text is None) == (audio is None):
            raise InputError("say: give either --text \"...\" or --audio FILE (exactly one).")
        if transcript is not None and audio is None:
            raise InputError("--transcript goes with --audio (with --text the words are already known).")
        if (portrait is None) == (twin is None):
            raise InputError("say: give a portrait image or --twin FILE (exactly one).")
        if workers < 0 or encoders < 1:
            raise InputError(f"--workers {workers} / --encoders {encoders}: need workers >= 0 and encoders >= 1.")
        options = _say_options(size, fps, face, device, seed, crf, preset, head_motion, expressiveness, expression)
        options = replace(options, words=words, workers=workers, encode=replace(options.encode, workers=encoders))
        _run_say(portrait if twin is None else twin, output, text, audio, transcript, options)
    except FacecastError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: nothing was written")
        raise typer.Exit(130)


@app.command("demo")
def demo_cmd(
    output: Path = typer.Option(Path("out/demo.mp4"), "-o", "--output", help="Output .mp4 path."),
    text: str = typer.Option(DEMO_TEXT, "--text", help="What the demo says."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Render a demo from data that ships with the packages: scikit-image's astronaut photo
    (a real portrait) and the bundled Piper voice."""
    _setup_logging(False)
    from skimage import data

    from .errors import FacecastError

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        options = _say_options("512", 25.0, None, device, 0, 23, "veryfast", 1.0, 1.0)
        _run_say(data.astronaut(), output, text, None, None, options)
    except FacecastError as exc:
        _fail(exc)


@app.command("sheet")
def sheet_cmd(
    portrait: str = typer.Argument(..., help="Portrait image."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .png path."),
    size: int = typer.Option(512, "--size", help="Portrait size in pixels."),
    zoom: int = typer.Option(3, "--zoom", help="Magnification of the crops."),
) -> None:
    """A contact sheet: the portrait's mouth closed, near-closed, half-open, open and rounded,
    a blink and a smile, zoomed in (to look at the renderer up close)."""
    _setup_logging(False)
    from .errors import FacecastError

    try:
        from . import face as face_mod
        from .quality.sheet import render_states, write_sheet

        img = face_mod.load_image(portrait)
        p = face_mod.frame_portrait(img, face_mod.find_face(img, source=portrait), size=size, source=portrait)
        err.print(f"wrote [bold]{write_sheet(output, p, {'facecast': render_states(p)}, zoom)}[/]")
    except FacecastError as exc:
        _fail(exc)


@app.command("loadtest")
def loadtest_cmd(
    streams: int = typer.Option(2, "--streams", help="Simulated clients talking at once."),
    seconds: float = typer.Option(10.0, "--seconds", help="How long each client talks."),
    size: int = typer.Option(512, "--size"),
    device: str = typer.Option("cpu", "--device"),
    workers: int = typer.Option(1, "--workers", help="Motion worker processes."),
    encoders: int = typer.Option(1, "--encoders", help="Encoder threads."),
    portraits: Optional[Path] = typer.Option(None, "--portraits", help="Pre-framed portraits (.npz); default: ../shared/media portraits."),
    speech: Optional[Path] = typer.Option(None, "--speech", help="Speech: an audio file or a .npz of 16 kHz samples."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
) -> None:
    """N simulated clients feed real speech in real time; per-stream fps, late frames, latency."""
    _setup_logging(False)
    import json

    import numpy as np

    from .engine import LoadTestOptions, portraits_from_npz, run_loadtest
    from .errors import FacecastError, InputError

    try:
        media = Path(__file__).resolve().parents[3] / "shared" / "media"
        if portraits is not None:
            faces = portraits_from_npz(portraits)
        else:
            from . import face

            faces = []
            for name in ("sam_512.jpg", "leijun.png", "bw_s12.jpg", "art0_painting.png"):
                img = face.load_image(media / "portrait" / name)
                faces.append(face.frame_portrait(img, face.find_face(img, source=name), size=size, source=name))
        if speech is not None and speech.suffix == ".npz":
            samples = np.load(speech)["samples"]
        else:
            from .audio import load_audio

            path = speech or media / "audio" / "speech60s_en.wav"
            if not Path(path).exists():
                raise InputError(f"{path}: speech file not found. Pass --speech FILE.")
            samples = load_audio(path).samples[0]
        result = run_loadtest(faces, samples, LoadTestOptions(streams=streams, seconds=seconds, size=size, device=device,
                                                              workers=workers, encoders=encoders))
    except FacecastError as exc:
        _fail(exc)
    text = json.dumps(result, indent=1)
    if json_out:
        json_out.write_text(text)
    Console().print_json(text)


@app.command("doctor")
def doctor_cmd(
    device: str = typer.Option("auto", "--device", help="auto (check the GPU if any), cpu, or cuda[:N] (must work)."),
    models: bool = typer.Option(True, "--models/--no-models", help="Also load every bundled model."),
) -> None:
    """Check this machine for real: run a kernel on the GPU, open NVENC, load the bundled models."""
    _setup_logging(False)
    from rich.table import Table

    from .quality import doctor

    checks = doctor.run(device=device, models=models)
    table = Table(show_header=True, header_style="bold")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]" if c.name != "nvenc" else "[yellow]no[/]",
                      c.detail, c.fix)
    Console().print(table)
    cuda = next((c for c in checks if c.name == "cuda"), None)
    if device.startswith("cuda") and cuda is not None and not cuda.ok:
        err.print(f"[bold red]error:[/] --device {device}: {cuda.detail}. Fix: {cuda.fix}.", highlight=False)
        raise typer.Exit(2)
    if any(not c.ok for c in checks if c.name not in ("cuda", "nvenc")):
        raise typer.Exit(1)

@app.command("eval")
def eval_cmd(
    clips: list[Path] = typer.Argument(..., help="Real talking videos with their own speech (or folders of them)."),
    mode: str = typer.Option("photo", "--mode", help="photo: one frame of the clip is the portrait, its sound drives it; twin: a .twin file speaks the clip's sound."),
    size: Optional[int] = typer.Option(None, "--size", help="Longer side of the evaluation frames (default: the clip's, <= 1024)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Evaluate only the first seconds of each clip."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all numbers as JSON here."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    plot: bool = typer.Option(False, "--plot", help="Write PNGs: mouth opening over time and a contact sheet."),
    plot_dir: Path = typer.Option(Path("out/eval"), "--plot-dir", help="Folder for --plot."),
    baselines: str = typer.Option("real,still,loudness", "--baselines", help="Comma-separated: real, still, loudness."),
    identity: bool = typer.Option(True, "--identity/--no-identity", help="dlib identity distance (needs dlib-bin)."),
    device: str = typer.Option("cpu", "--device", help="Render device of the generated rows."),
    twin: Optional[Path] = typer.Option(None, "--twin", help="With --mode twin: the .twin file to evaluate."),
    start_fraction: float = typer.Option(0.0, "--start-fraction", help="Evaluate from this fraction of each clip (0.8 = the last 20 %)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Regenerate real talking clips and score lip sync, stability, identity and image quality
    against the real clip, a still frame (floor) and a loudness-only mouth."""
    _setup_logging(verbose)
    from .errors import FacecastError

    try:
        from .quality import report as eval_report
        from .quality.clips import expand_clips
        from .quality.eval import evaluate_clip
        from .quality.options import EvalOptions
        from .sysinfo import machine_info

        names = tuple(b.strip() for b in baselines.split(",") if b.strip())
        options = EvalOptions(mode=mode, size=size, max_seconds=max_seconds, plot_dir=plot_dir if plot else None,
                              baselines=names, identity=identity, device=device, twin=twin,
                              start_fraction=start_fraction)
        out = Console() if sys.stdout.isatty() else Console(width=170)
        machine = machine_info()  # the revision the run starts from
        reports = []
        for clip in expand_clips(clips):
            report = evaluate_clip(clip, options, progress=lambda msg: err.print(f"[dim]{msg}[/]"))
            reports.append(report)
            out.print(eval_report.rich_table(report))
            for key, m in report.margins.items():
                out.print(f"  lip sync, facecast - {key[3:]} (aperture r, lag 0, 95 % interval): {m.text()}",
                          highlight=False)
            for note in report.notes:
                out.print(f"  note: {note}", highlight=False)
            for p in report.plots:
                out.print(f"  plot: {p}", highlight=False)
        if len(reports) > 1:
            for line in eval_report.margin_lines(reports):
                out.print(line, highlight=False)
        if json_path is not None:
            eval_report.write_json(reports, json_path, machine)
            err.print(f"wrote [bold]{json_path}[/]")
        if markdown is not None:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(eval_report.markdown_report(reports) + "\n")
            err.print(f"wrote [bold]{markdown}[/]")
    except FacecastError as exc:
        _fail(exc)


def _float_list(text: str, what: str) -> tuple[float, ...]:
    from .errors import InputError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"{what} {text}: give comma-separated numbers, e.g. 5,60,600.") from None


@app.command("bench")
def bench_cmd(
    durations: str = typer.Option("5", "--durations", help="Input lengths in seconds, comma-separated (e.g. 5,60,600)."),
    sizes: str = typer.Option("512", "--sizes", help="Output sizes in pixels, comma-separated (e.g. 256,512,1024)."),
    long: bool = typer.Option(False, "--long", help="All documented scales: 5 s, 60 s and 10 min (takes a while)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    repeats: int = typer.Option(5, "--repeats", help="Runs for the time-to-first-chunk p50/p95 (after a warm-up)."),
    workers: int = typer.Option(0, "--workers", help="Phone-recognition worker processes (SayOptions.workers)."),
    encoders: int = typer.Option(1, "--encoders", help="Parallel H.264 encoder threads (EncodeOptions.workers)."),
    words: bool = typer.Option(True, "--words/--no-words", help="Word recognition for a second phone timeline."),
    speech: Optional[Path] = typer.Option(None, "--speech", help="Speech file looped to each duration (default: a paragraph spoken by the bundled voice)."),
    portrait: Optional[str] = typer.Option(None, "--portrait", help="Portrait image (default: scikit-image's astronaut)."),
    text: bool = typer.Option(False, "--text", help="Drive with Piper TTS of a repeated paragraph instead of speech audio."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all numbers (and the RSS curves) as JSON here."),
    append: Optional[Path] = typer.Option(None, "--append", help="Append a Markdown section here (e.g. docs/benchmarks.md)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Speed and memory: real-time factor end to end and per stage, fps, time to first chunk,
    peak RSS (and VRAM on CUDA) over input lengths and output sizes."""
    _setup_logging(verbose)
    from .errors import FacecastError

    try:
        from .quality import bench
        from .quality.options import BenchOptions
        from .sysinfo import machine_info

        durs = (5.0, 60.0, 600.0) if long else _float_list(durations, "--durations")
        options = BenchOptions(durations=durs, sizes=tuple(int(x) for x in _float_list(sizes, "--sizes")),
                               device=device, repeats=repeats, speech=speech, portrait=portrait,
                               source="text" if text else "audio", workers=workers, encoders=encoders,
                               words=words)
        machine = machine_info()  # the revision the run starts from
        results = bench.run_bench(options, progress=lambda msg: err.print(f"[dim]{msg}[/]"))
        (Console() if sys.stdout.isatty() else Console(width=250)).print(bench.rich_table(results))
        command = "facecast " + " ".join(sys.argv[1:])
        if json_path is not None:
            bench.write_json(results, json_path, command, machine)
            err.print(f"wrote [bold]{json_path}[/]")
        if append is not None:
            bench.append_markdown(append, results, command, machine)
            err.print(f"appended to [bold]{append}[/]")
    except FacecastError as exc:
        _fail(exc)


twin_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Person-specific photoreal twins: train from minutes of video, then `say --twin`.")
app.add_typer(twin_app, name="twin")


@twin_app.command("train")
def twin_train_cmd(
    videos: list[Path] = typer.Argument(..., help="1-5 minutes of one person talking (MP4 files)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .twin file."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto (training wants a GPU)."),
    minutes: float = typer.Option(6.0, "--minutes", help="Time budget for the renderer's training."),
    steps: int = typer.Option(6000, "--steps", help="Most renderer steps (the budget in --minutes may end it sooner)."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="VIDEO:FRACTION kept out of training, e.g. talk2.mp4:0.2."),
    size: int = typer.Option(336, "--crop", help="Mouth-crop side in pixels (336 = a 512-px face's density)."),
    tiny: bool = typer.Option(False, "--tiny", help="A tiny network and short training (smoke tests, CPU)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a twin: track -> prepare -> mouth model -> renderer -> .twin file. Resumable:
    re-running the same command picks up the cached tracks and the last checkpoint."""
    _setup_logging(verbose)
    _quiet_native_logs()
    import json

    from .errors import FacecastError, InputError
    from .twin import TwinTrainOptions, train_twin
    from .twin.options import PrepOptions
    from .twin.net import RenderConfig
    from .twin.options import RenderTrainOptions

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
        if size % 16:
            raise InputError(f"--crop {size}: must be a multiple of 16 (the network halves it 4 times).")
        cfg = RenderConfig(size=size, widths=(16, 16, 32) if tiny else RenderConfig().widths,
                           mid_blocks=1 if tiny else 2)
        options = TwinTrainOptions(
            device=device,
            prep=PrepOptions(crop_px=size, min_speech_s=3.0 if tiny else PrepOptions().min_speech_s),
            render=RenderTrainOptions(config=cfg, steps=steps, seconds=minutes * 60, batch=4 if tiny else 16),
            mouth_steps=30 if tiny else None,
            holdout=hold,
        )
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
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: run the same command again to resume")
        raise typer.Exit(130)


def main() -> None:
    _quiet_native_logs()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
