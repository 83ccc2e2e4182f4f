"""`facecast batch`: many jobs from a JSONL file (or a folder of scripts), with a bar for the
batch and one per running job, and a summary table at the end.

Exit status: 0 every job done (or skipped: its output was already complete), 2 the batch was
refused before any job ran (the error lists every bad line), 3 the batch ran and some job
failed (the table gives each one's reason), 130 / 143 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..interrupts import interrupt_code
from .app import app, err, fail, flag_error, number, setup_logging

BATCH_FLAGS = {"BatchOptions.jobs": "--jobs", "BatchOptions.device": "--device", "BatchOptions.ray_cpus": "--ray-cpus",
               "BatchOptions.retries": "--retries", "BatchOptions.ray_media": "--ray-media",
               "BatchOptions.ray_media_limit_mb": "--ray-media-limit"}


@app.command("batch")
def batch_cmd(
    jobs_file: Path = typer.Argument(..., metavar="JOBS", help="A .jsonl file, one JSON job per line ({\"kind\": "
                                     "\"say\" | \"dub\" | \"script\", ...}), or a folder of .md scripts."),
    jobs: Optional[str] = typer.Option(None, "--jobs", "-j", help="Jobs at once on this machine, 1 ... 64 (threads "
                                       "sharing the warm models and the GPU; default 1). With --ray: the most jobs in "
                                       "flight (default one per worker)."),
    device: str = typer.Option("cpu", "--device", help="Device of jobs without a \"device\" field: cpu, cuda, cuda:N "
                               "or auto. With --ray each worker uses its own (cuda on GPU workers)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the jobs on a Ray cluster: 'auto' (this machine's "
                                      "cluster, or a local one) or HOST:PORT."),
    ray_cpus: str = typer.Option("1", "--ray-cpus", help="CPUs each Ray worker reserves, 1 ... 256."),
    retries: str = typer.Option("3", "--retries", help="Ray: times a job is restarted when its worker dies, 0 ... 100."),
    ray_media: str = typer.Option("auto", "--ray-media", help="Ray: how a job's files reach its worker: "
                                  "shared-storage (paths on storage every node sees), object-store (inputs shipped to "
                                  "the worker, the output sent back here) or auto (per job: in place where the worker "
                                  "sees the files, else shipped). docs/scaling.md."),
    ray_media_limit: str = typer.Option("2048", "--ray-media-limit", help="Ray: the most MB one job ships through the "
                                        "object store (its inputs; its outputs), 1 ... 65536; a job over it fails."),
    force: bool = typer.Option(False, "--force", help="Render every job again, even those whose output is complete."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="With a folder of scripts: where NAME.mp4 "
                                              "go (default: the folder)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Render many jobs with warm models, N at a time or on a Ray cluster; re-running resumes."""
    setup_logging(verbose)
    from ..batch.events import exit_code
    from ..batch.options import BatchOptions
    from ..batch.read import read_jobs
    from ..errors import FacecastError, InputError, OptionError

    try:
        try:
            jobs_n = None if jobs is None else number(jobs)
            options = BatchOptions(jobs=jobs_n, device=device, force=force, ray=ray, ray_cpus=number(ray_cpus),
                                   retries=number(retries), ray_media=ray_media,
                                   ray_media_limit_mb=number(ray_media_limit))
        except ValueError as exc:
            if isinstance(exc, OptionError):
                raise flag_error(exc, BATCH_FLAGS, {"--jobs": jobs, "--ray-cpus": ray_cpus, "--retries": retries,
                                                    "--ray-media-limit": ray_media_limit}) from None
            raise InputError(f"--jobs / --ray-cpus / --retries / --ray-media-limit: {exc} (give a number).") from None
        job_list = read_jobs(jobs_file, output_dir)
        results = _run(job_list, options)
    except FacecastError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        err.print("[red]interrupted[/]: finished outputs are kept; run the same command again to resume")
        raise typer.Exit(interrupt_code(exc))
    _summary(results)
    raise typer.Exit(exit_code(results))


def _run(job_list, options):
    from ..batch.events import JobFinished, JobProgress, JobStarted
    from ..batch.local import run_batch

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        batch = bar.add_task("[bold]batch", total=len(job_list), note=f"0/{len(job_list)} jobs")
        running: dict[int, int] = {}
        counts = {"done": 0, "failed": 0, "skipped": 0}

        def on_event(event) -> None:
            if isinstance(event, JobStarted):
                old = running.pop(event.job.line, None)
                if old is not None:  # a retry on another worker
                    bar.remove_task(old)
                running[event.job.line] = bar.add_task(f"  {event.job.kind} {event.job.output.name}", total=None,
                                                       note=event.worker + (f", try {event.attempt}"
                                                                            if event.attempt > 1 else ""))
            elif isinstance(event, JobProgress):
                task = running.get(event.job.line)
                if task is not None:
                    of = f" of {event.total:.1f}" if event.total else ""
                    bar.update(task, completed=event.done, total=event.total, note=f"{event.done:.1f}{of} s of speech")
            elif isinstance(event, JobFinished):
                task = running.pop(event.result.job.line, None)
                if task is not None:
                    bar.remove_task(task)
                counts[event.result.status] += 1
                finished = sum(counts.values())
                bar.update(batch, advance=1, note=f"{finished}/{len(job_list)} jobs: "
                           + ", ".join(f"{n} {s}" for s, n in counts.items() if n))

        return run_batch(job_list, options, on_event)


def _summary(results) -> None:
    table = Table(title="batch", show_lines=False, highlight=False)
    for col in ("job", "kind", "output", "status", "time", "reason"):
        table.add_column(col, overflow="fold")
    styles = {"done": "green", "failed": "bold red", "skipped": "dim"}
    for r in results:
        secs = f"{r.seconds:.1f} s" if r.status != "skipped" else ""
        table.add_row(r.job.where, r.job.kind, str(r.job.output), f"[{styles[r.status]}]{r.status}[/]", secs,
                      r.reason + (f" (after {r.attempts} starts)" if r.attempts > 1 else ""))
    err.print(table)
    for r in results:  # the reasons again, one whole line each (the table folds them)
        if r.status == "failed":
            err.print(f"failed: {r.job.where}: {r.reason}", highlight=False, soft_wrap=True)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "failed", "skipped")}
    err.print(f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped", highlight=False)
    ways = {}
    for r in results:  # on Ray: how the jobs' files moved (--ray-media)
        if r.transfer:
            ways[r.transfer] = ways.get(r.transfer, 0) + 1
    if ways:
        err.print("on Ray: " + "; ".join(f"{n} job{'s' if n != 1 else ''} with {w}" for w, n in ways.items()),
                  highlight=False, soft_wrap=True)
