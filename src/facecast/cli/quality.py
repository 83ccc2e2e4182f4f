"""`facecast doctor`, `facecast eval` and `facecast bench`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..outputs import check_output_files
from .app import app, err, fail, setup_logging


@app.command("doctor")
def doctor_cmd(
    device: str = typer.Option("auto", "--device", help="auto (check the GPU if any), cpu, or cuda[:N] (must work)."),
    models: bool = typer.Option(True, "--models/--no-models", help="Also load every bundled model."),
) -> None:
    """Check this machine for real: run a kernel on the GPU, open NVENC, load the bundled models."""
    setup_logging(False)
    from rich.table import Table

    from ..quality import doctor

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

EVAL_PLOT_DIR = Path("out/eval")


@app.command("eval")
def eval_cmd(
    clips: list[Path] = typer.Argument(..., help="Real talking videos with their own speech (or folders of them)."),
    mode: str = typer.Option("photo", "--mode", help="photo: one frame of the clip is the portrait, its sound drives it; twin: a .twin file speaks the clip's sound; dub: each clip's video dubbed with each other clip's sound (same person)."),
    size: Optional[int] = typer.Option(None, "--size", help="Longer side of the evaluation frames (default: the clip's, <= 1024)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Evaluate only the first seconds of each clip."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all numbers as JSON here."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    plot: bool = typer.Option(False, "--plot", help="Write PNGs: mouth opening over time and a contact sheet."),
    plot_dir: Path = typer.Option(EVAL_PLOT_DIR, "--plot-dir", help="Folder for --plot (created; its parent must exist)."),
    baselines: str = typer.Option("real,still,loudness", "--baselines", help="Comma-separated: real, still, loudness."),
    identity: bool = typer.Option(True, "--identity/--no-identity", help="dlib identity distance (needs dlib-bin)."),
    device: str = typer.Option("cpu", "--device", help="Render device of the generated rows."),
    twin: Optional[Path] = typer.Option(None, "--twin", help="With --mode twin: the .twin file to evaluate."),
    start_fraction: float = typer.Option(0.0, "--start-fraction", help="Evaluate from this fraction of each clip (0.8 = the last 20 %)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Regenerate real talking clips and score lip sync, stability, identity and image quality
    against the real clip, a still frame (floor) and a loudness-only mouth."""
    setup_logging(verbose)
    from ..errors import FacecastError, OutputError

    try:
        from ..quality import report as eval_report
        from ..quality.clips import expand_clips
        from ..quality.eval import evaluate_clip
        from ..quality.options import EvalOptions
        from ..sysinfo import machine_info

        inputs = [("clip", c) for c in clips] + [("--twin", twin)]
        check_output_files(("--json", json_path, None), ("--markdown", markdown, None), inputs=inputs)
        if plot and plot_dir != EVAL_PLOT_DIR and not plot_dir.parent.is_dir():
            raise OutputError(f"--plot-dir {plot_dir}: the folder {plot_dir.parent} does not exist. Create it "
                              f"first (mkdir -p {plot_dir.parent}) or write elsewhere.")
        names = tuple(b.strip() for b in baselines.split(",") if b.strip())
        options = EvalOptions(mode=mode, size=size, max_seconds=max_seconds, plot_dir=plot_dir if plot else None,
                              baselines=names, identity=identity, device=device, twin=twin,
                              start_fraction=start_fraction)
        out = Console() if sys.stdout.isatty() else Console(width=170)
        machine = machine_info()  # the revision the run starts from
        if mode == "dub":  # the video of one clip dubbed with the sound of another (quality.dub_eval)
            from ..quality.dub_eval import run_eval

            return run_eval(expand_clips(clips), options, json_path, markdown, out, err, machine)
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
            markdown.write_text(eval_report.markdown_report(reports) + "\n")
            err.print(f"wrote [bold]{markdown}[/]")
    except FacecastError as exc:
        fail(exc)


def _float_list(text: str, what: str) -> tuple[float, ...]:
    from ..errors import InputError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"{what} {text}: give comma-separated numbers, e.g. 5,60,600.") from None


def _int_list(text: str, what: str) -> tuple[int, ...]:
    from ..errors import InputError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"{what} {text}: give comma-separated whole numbers, e.g. 256,512,1024.") from None


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
    setup_logging(verbose)
    from ..errors import FacecastError

    try:
        from ..quality import bench
        from ..quality.options import BenchOptions
        from ..sysinfo import machine_info

        check_output_files(("--json", json_path, None), ("--append", append, None),
                       inputs=(("--speech", speech), ("--portrait", portrait)))
        durs = (5.0, 60.0, 600.0) if long else _float_list(durations, "--durations")
        options = BenchOptions(durations=durs, sizes=_int_list(sizes, "--sizes"),
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
        fail(exc)


@app.command("sheet")
def sheet_cmd(
    portrait: str = typer.Argument(..., help="Portrait image."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .png path."),
    size: int = typer.Option(512, "--size", help="Portrait size in pixels."),
    zoom: int = typer.Option(3, "--zoom", help="Magnification of the crops."),
) -> None:
    """A contact sheet: the portrait's mouth closed, near-closed, half-open, open and rounded,
    a blink and a smile, zoomed in (to look at the renderer up close)."""
    setup_logging(False)
    from ..errors import FacecastError

    try:
        from .. import face as face_mod
        from ..quality.sheet import render_states, write_sheet

        img = face_mod.load_image(portrait)
        p = face_mod.frame_portrait(img, face_mod.find_face(img, source=portrait), size=size, source=portrait)
        err.print(f"wrote [bold]{write_sheet(output, p, {'facecast': render_states(p)}, zoom)}[/]")
    except FacecastError as exc:
        fail(exc)
