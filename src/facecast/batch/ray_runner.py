"""The same jobs on a Ray cluster: one warm worker actor per GPU (or, on a cluster without GPUs,
one per ``BatchOptions.ray_cpus`` CPUs), each a ``warm.Worker`` running one job at a time.

    run_ray(jobs, BatchOptions(ray="auto" | "HOST:PORT"), emit) -> [JobResult]

Files: inputs and outputs are paths every node sees (a shared file system mounted at the same
path on every node: docs/scaling.md); jobs carry paths, not bytes, and each output is written
atomically by the worker that renders it. Retries: a worker actor whose process dies (killed,
out of memory, its node lost) is restarted by Ray (``max_restarts``) and the job it was running
is started again on it (``max_task_retries``), ``BatchOptions.retries`` times; the killed try's
partial file is swept when the job starts again. Progress: every actor reports to a small hub
actor (started, seconds done), which the caller drains into the same events as the local
runner's. Interrupting the caller cancels the running jobs (each stops at its next progress
step, removing its partial file) and ends the actors.

Connecting: "auto" joins the cluster this machine belongs to (RAY_ADDRESS, or one `ray start`
started here) and starts a local one when there is none; an address is checked for a listening
port first, so an unreachable cluster is refused at once (InputError, exit 2) instead of Ray's
minute of retries. A caller already connected (``ray.is_initialized()``) keeps its connection.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from typing import Callable

from ..errors import InputError
from .events import FAILED, Event, JobFinished, JobProgress, JobResult, JobStarted
from .options import BatchOptions
from .spec import Job
from .warm import Cancelled, Worker

__all__ = ["run_ray", "connect", "check_reachable", "PROGRESS_PERIOD_S"]

PROGRESS_PERIOD_S = 0.25
"""Most often a worker reports a job's progress, and how often the caller polls."""

CONNECT_TIMEOUT_S = 5.0


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray, which is not installed: pip install 'facecast[ray]' (on every node).") from None
    return ray


def check_reachable(address: str) -> None:
    """InputError unless something listens at ``address`` ("HOST:PORT" or "ray://HOST:PORT")."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: not a cluster address. Give HOST:PORT (the head node's `ray start "
                         "--head` port, 6379 by default), ray://HOST:10001, or auto.")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"--ray {address}: cannot reach a Ray cluster there ({reason}). Start one on the head node "
                         f"(ray start --head --port={port}) or check the address.") from None


def connect(address: str) -> bool:
    """Join the cluster (see the module docstring); True when this call started or joined it (and
    the caller should disconnect at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address == "auto":
        try:
            ray.init(address="auto", log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError:
            ray.init(**quiet)  # none running: a local cluster for this batch, ended with it
        return True
    check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # Ray raises several kinds (ConnectionError, RuntimeError, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--ray {address}: could not join the Ray cluster ({first}).") from None
    return True


@functools.lru_cache(maxsize=1)
def _remote_classes():
    """The hub and worker actor classes (made on first use: `import ray` is slow)."""
    ray = _ray()

    @ray.remote(num_cpus=0)
    class Hub:
        """Progress from every worker, drained by the caller."""

        def __init__(self) -> None:
            self.events: list = []
            self.starts: dict[int, int] = {}

        def started(self, line: int, worker: str, pid: int) -> None:
            self.starts[line] = self.starts.get(line, 0) + 1
            self.events.append(("started", line, worker, pid, self.starts[line]))

        def progress(self, line: int, done: float, total) -> None:
            self.events.append(("progress", line, done, total))

        def drain(self) -> list:
            out, self.events = self.events, []
            return out

    class JobActor:
        """A warm Worker (models kept between jobs) running one job at a time."""

        def __init__(self, hub: str, device: str) -> None:
            # The hub by name (not a handle in the object store: a restarted actor finds it anew).
            self.hub, self.device = ray.get_actor(hub), device
            self.worker = Worker(f"ray pid {os.getpid()}")

        def run(self, job: Job) -> JobResult:
            ctx = ray.get_runtime_context()
            self.hub.started.remote(job.line, self.worker.name, os.getpid())
            for field, path in job.inputs:
                if not path.exists():
                    return JobResult(job, FAILED, f"{path} (\"{field}\") is not there on node {socket.gethostname()}: "
                                     "inputs and outputs must be on storage every node sees at the same path",
                                     worker=self.worker.name)
            last = [0.0]

            def progress(done: float, total) -> None:
                if ctx.is_canceled():
                    raise Cancelled()
                now = time.monotonic()
                if now - last[0] >= PROGRESS_PERIOD_S:
                    last[0] = now
                    self.hub.progress.remote(job.line, done, total)

            return self.worker.run(job, self.device, progress)

    return Hub, ray.remote(JobActor)


def _actors(ray, options: BatchOptions, hub: str, n_jobs: int) -> list:
    """The worker actors: one per GPU of the cluster, else one per ``ray_cpus`` CPUs; at most
    one per job (and ``options.jobs`` when given)."""
    _, actor_cls = _remote_classes()
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus:
        count, per = gpus, dict(num_gpus=1, num_cpus=options.ray_cpus)
        device = "cuda"
    else:
        count, per = max(1, int(res.get("CPU", 1) // options.ray_cpus)), dict(num_cpus=options.ray_cpus)
        device = options.device
    count = min(count, n_jobs, options.jobs or count)
    retry = dict(max_restarts=options.retries, max_task_retries=options.retries)
    return [actor_cls.options(**per, **retry).remote(hub, device) for _ in range(count)]


def run_ray(jobs: list[Job], options: BatchOptions, emit: Callable[[Event], None]) -> list[JobResult]:
    """Run ``jobs`` on the cluster ``options.ray`` (see the module docstring); results in job
    order. InputError (nothing run) when the cluster cannot be reached."""
    ray = _ray()
    joined = connect(options.ray or "auto")
    by_line = {j.line: j for j in jobs}
    results: dict[int, JobResult] = {}
    starts: dict[int, int] = {}
    hub_cls, _ = _remote_classes()
    hub_name = f"facecast-batch-hub-{os.getpid()}-{time.time_ns()}"
    hub = hub_cls.options(name=hub_name).remote()
    actors = _actors(ray, options, hub_name, len(jobs))
    pending = list(jobs)
    idle = list(actors)
    flight: dict = {}  # ref -> (job, actor)

    def forward() -> None:
        for ev in ray.get(hub.drain.remote()):
            job = by_line.get(ev[1])
            if job is None or job.line in results:
                continue
            if ev[0] == "started":
                starts[job.line] = ev[4]
                emit(JobStarted(job, ev[2], ev[3], ev[4]))
            else:
                emit(JobProgress(job, ev[2], ev[3]))

    try:
        while pending or flight:
            while idle and pending:
                job, actor = pending.pop(0), idle.pop(0)
                flight[actor.run.remote(job)] = (job, actor)
            ready, _ = ray.wait(list(flight), num_returns=1, timeout=PROGRESS_PERIOD_S)
            forward()
            for ref in ready:
                job, actor = flight.pop(ref)
                try:
                    result = ray.get(ref)
                    idle.append(actor)
                except ray.exceptions.RayError as exc:  # the worker died more often than retries allow
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    result = JobResult(job, FAILED, f"worker lost ({first[:200]})")
                result = JobResult(result.job, result.status, result.reason, result.seconds, result.duration,
                                   result.worker, max(1, starts.get(job.line, 1)))
                results[job.line] = result
                emit(JobFinished(result))
            if not idle and not flight and pending:  # every worker is gone for good
                for job in pending:
                    results[job.line] = JobResult(job, FAILED, "no Ray worker left to run it")
                    emit(JobFinished(results[job.line]))
                pending = []
    except BaseException:
        _stop(ray, flight)
        raise
    finally:
        for actor in actors + [hub]:
            ray.kill(actor, no_restart=True)
        if joined:
            ray.shutdown()
    return [results[j.line] for j in jobs if j.line in results]


def _stop(ray, flight: dict) -> None:
    """Interrupted: cancel the running jobs (each removes its partial file at its next progress
    step), wait briefly for them, then sweep what a killed one left."""
    from ..media.mp4 import sweep_partial

    for ref in flight:
        ray.cancel(ref)
    try:
        ray.wait(list(flight), num_returns=len(flight), timeout=10.0)
    except Exception:  # the cluster may be going away too
        pass
    for ref, (job, actor) in flight.items():
        ray.kill(actor, no_restart=True)
    for job, _ in flight.values():
        try:
            sweep_partial(job.output)
        except Exception:  # held by a worker still dying: the next run sweeps it
            pass
