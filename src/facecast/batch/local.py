"""The local runner: a batch's jobs on this machine, ``BatchOptions.jobs`` at a time.

    results = run_batch(jobs, BatchOptions(jobs=2), on_event=print)

Each of the N threads is a warm ``Worker`` (its own speech models and renderers; the framed
portraits, the voice, the phone-recognition processes and the CUDA device are shared by all).
Why threads of one process rather than processes: on the GPU the jobs then share one CUDA
context, and what they share stays loaded once; the heavy parts that hold Python's lock
(phone recognition) can go to the shared worker processes (a job's "workers" field), while
rendering, x264 and the speech detector release it. docs/scaling.md has the numbers.

Order and failure: jobs start in file order; one failing job is reported (JobFinished with its
one-line reason) and the others go on. Jobs whose output is already complete are skipped
(``plan``), unless ``force``. Ctrl-C / SIGTERM stop every running job at its next progress step
(their partial files removed, as `say` does) and re-raise here; finished outputs stay, so the
next run resumes.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

from .events import SKIPPED, Event, JobFinished, JobProgress, JobResult, JobStarted, output_duration
from .options import BatchOptions
from .spec import Job
from .warm import Cancelled, Portraits, PortraitCache, Worker

__all__ = ["run_batch", "run_local", "plan"]

OnEvent = Callable[[Event], None]


def plan(jobs: list[Job], force: bool = False) -> tuple[list[Job], list[JobResult]]:
    """(jobs to run, results of the jobs skipped because their output is already complete)."""
    todo, skipped = [], []
    for job in jobs:
        duration = None if force else output_duration(job.output)
        if duration is None:
            todo.append(job)
        else:
            skipped.append(JobResult(job, SKIPPED, "output already complete", duration=duration))
    return todo, skipped


def run_local(jobs: list[Job], options: BatchOptions = BatchOptions(), on_event: OnEvent | None = None,
              portraits: Portraits | None = None) -> list[JobResult]:
    """Run ``jobs`` (already planned: none skipped here) on ``options.jobs`` warm threads; the
    results in job order. Events are delivered on the calling thread."""
    emit = on_event or (lambda event: None)
    portraits = portraits if portraits is not None else PortraitCache()
    pending: queue.Queue = queue.Queue()
    for job in jobs:
        pending.put(job)
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    results: dict[int, JobResult] = {}

    def work(n: int) -> None:
        worker = Worker(f"thread {n}", portraits)
        while not cancel.is_set():
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            events.put(JobStarted(job, worker.name, worker.pid))

            def progress(done: float, total: float | None, job=job) -> None:
                if cancel.is_set():
                    raise Cancelled()
                events.put(JobProgress(job, done, total))

            try:
                result = worker.run(job, options.device, progress)
            except KeyboardInterrupt:
                return
            events.put(JobFinished(result))

    n = max(1, min(options.jobs or 1, len(jobs)))
    threads = [threading.Thread(target=work, args=(i + 1,), name=f"facecast-batch-{i + 1}", daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads) or not events.empty():
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(event, JobFinished):
                results[event.result.job.line] = event.result
            emit(event)
    except BaseException:
        cancel.set()
        for t in threads:
            t.join()
        raise
    return [results[j.line] for j in jobs if j.line in results]


def run_batch(jobs: list[Job], options: BatchOptions = BatchOptions(), on_event: OnEvent | None = None,
              portraits: Portraits | None = None) -> list[JobResult]:
    """Run a batch: skip jobs whose output is complete (unless ``options.force``), run the rest
    here (``run_local``) or on Ray (``options.ray``: ``ray_runner.run_ray``). Every job's result,
    in job order; each skipped job is reported as a JobFinished first."""
    emit = on_event or (lambda event: None)
    todo, skipped = plan(jobs, options.force)
    for r in skipped:
        emit(JobFinished(r))
    if not todo:
        ran = []
    elif options.ray is not None:
        from .ray_runner import run_ray

        ran = run_ray(todo, options, emit)
    else:
        ran = run_local(todo, options, emit, portraits)
    by_line = {r.job.line: r for r in skipped + ran}
    return [by_line[j.line] for j in jobs if j.line in by_line]
