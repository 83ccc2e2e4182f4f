"""The same jobs on a Ray cluster: one warm worker actor per GPU (or, on a cluster without GPUs,
one per ``BatchOptions.ray_cpus`` CPUs), each a ``warm.Worker`` running one job at a time.

    run_ray(jobs, BatchOptions(ray="auto" | "HOST:PORT"), emit) -> [JobResult]

Files (``BatchOptions.ray_media``, docs/scaling.md): "shared-storage": inputs and outputs are paths
every node sees (a shared file system mounted at the same path on every node); jobs carry paths,
not bytes, and each output is written atomically by the worker that renders it. "object-store":
the caller ships each job's input files through Ray's object store into a temporary folder on
its worker (``transfer.JobFolder``), the job runs there, and its output's bytes come back to be
written atomically by the caller. "auto": per job, inputs read in place when the worker sees
them (same path, size, first and last MiB) else shipped, the output written in place when the
worker sees the output's folder (a marker file the caller made there) else sent back; a worker
that had to be sent one job's inputs is sent the next job's straight away.

Retries: a worker actor whose process dies (killed, out of memory, its node lost) is restarted
by Ray (``max_restarts``) and the job it was running is started again on it
(``max_task_retries``, from the same shipped pieces), ``BatchOptions.retries`` times; the killed
try's partial file (or job folder) is swept when the actor starts again. Progress: every actor reports to a small hub
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..errors import InputError
from .events import DONE, FAILED, Event, JobFinished, JobProgress, JobResult, JobStarted, one_line
from .kinds import KINDS
from .options import BatchOptions
from .spec import Job
from .transfer import (JobFolder, OutputProbes, TooBig, fingerprint, sees, sees_probe, ship, sweep_dead,
                       write_back)
from .warm import Cancelled, Worker

__all__ = ["run_ray", "connect", "check_reachable", "Plan", "NeedsInputs", "run_planned",
           "PROGRESS_PERIOD_S"]

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


@dataclass(frozen=True)
class Plan:
    """How one job's files reach its worker (see the module docstring).

    inputs: "in-place" (read at the job's paths; one the worker does not see fails the job),
        "check" (read in place if the worker sees ``fingerprints``, else answer NeedsInputs),
        "shipped" (``shipped``: transfer.ShippedFile pieces in the object store).
    output: "in-place" (written at the job's path), "probe" (in place if the worker sees the
        marker file ``probe`` in the output's folder, else sent back), "back" (sent back).
    request: the job's request as it travels (a script parsed by the caller); None: the job's.
    limit: bytes the job may send back.
    """

    inputs: str = "in-place"
    output: str = "in-place"
    fingerprints: tuple = ()
    shipped: tuple = ()
    probe: str = ""
    request: object = None
    limit: int = 0


@dataclass(frozen=True)
class NeedsInputs:
    """A worker's answer to a "check" Plan whose files it does not see: send them.
    output_seen: whether it sees the output's folder (the output is then written in place)."""

    output_seen: bool


def _transfer(shipped: bool, back: bool) -> str:
    return f"inputs {'shipped' if shipped else 'in place'}, output {'sent back' if back else 'in place'}"


def run_planned(get, worker: Worker, job: Job, plan: Plan, device: str, progress, started: Callable[[], None]):
    """One job on a worker (a Ray actor's) by its Plan: (JobResult | NeedsInputs, [(caller's path,
    bytes)]). ``get``: ray.get, for the shipped pieces; ``started()`` is called once the job
    really starts (not for a NeedsInputs answer)."""
    if plan.inputs == "check" and not sees(plan.fingerprints):
        return NeedsInputs(plan.output == "probe" and sees_probe(job.output.parent, plan.probe)), []
    started()
    back = plan.output == "back" or (plan.output == "probe" and not sees_probe(job.output.parent, plan.probe))
    shipped = plan.inputs == "shipped"
    how = _transfer(shipped, back)
    if plan.inputs == "in-place":
        for field, path in job.inputs:
            if not path.exists():
                return JobResult(job, FAILED, f"{path} (\"{field}\") is not there on node {socket.gethostname()}: "
                                 "inputs and outputs must be on storage every node sees at the same path (or use "
                                 "--ray-media object-store)", worker=worker.name, transfer=how), []
    if not shipped and not back:
        return replace(worker.run(job, device, progress), transfer=how), []
    kind = KINDS[job.kind]
    with JobFolder() as folder:
        t0 = time.perf_counter()
        try:
            folder.materialise(get, plan.shipped)
        except Exception as exc:  # the node's disk is full, a piece was lost
            return JobResult(job, FAILED, folder.caller_words(one_line(exc)), time.perf_counter() - t0,
                             worker=worker.name, transfer=how), []
        request = plan.request if plan.request is not None else job.request
        outputs = kind.outputs(request, job.output) if back else []
        for p in outputs:
            folder.output(p)
        moved = replace(job, request=kind.with_paths(request, folder.move), output=folder.move(job.output))
        result = worker.run(moved, device, progress)
        result = replace(result, job=job, reason=folder.caller_words(result.reason),
                         seconds=time.perf_counter() - t0, transfer=how)
        if result.status != DONE or not back:
            return result, []
        try:
            return result, folder.collect(outputs, plan.limit)
        except TooBig as exc:
            return replace(result, status=FAILED, reason=str(exc), duration=None), []


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
            sweep_dead()  # the job folders of workers killed on this node (this actor's last life too)

        def run(self, job: Job, plan: Plan):
            ctx = ray.get_runtime_context()
            last = [0.0]

            def progress(done: float, total) -> None:
                if ctx.is_canceled():
                    raise Cancelled()
                now = time.monotonic()
                if now - last[0] >= PROGRESS_PERIOD_S:
                    last[0] = now
                    self.hub.progress.remote(job.line, done, total)

            def started() -> None:
                self.hub.started.remote(job.line, self.worker.name, os.getpid())

            return run_planned(ray.get, self.worker, job, plan, self.device, progress, started)

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


def run_ray(jobs: list[Job], options: BatchOptions, emit: Callable[[Event], None],
            where: Callable[[Path], Path] | None = None) -> list[JobResult]:
    """Run ``jobs`` on the cluster ``options.ray`` (see the module docstring); results in job
    order. InputError (nothing run) when the cluster cannot be reached. ``where``: the caller's
    own path of a job's file (default: the same path), through which the caller reads the
    inputs it ships and writes the outputs sent back; workers are never told it (a test moves
    the files away from the paths the jobs name, which then no worker can read)."""
    ray = _ray()
    where = where or (lambda p: p)
    joined = connect(options.ray or "auto")
    by_line = {j.line: j for j in jobs}
    results: dict[int, JobResult] = {}
    starts: dict[int, int] = {}
    hub_cls, _ = _remote_classes()
    hub_name = f"facecast-batch-hub-{os.getpid()}-{time.time_ns()}"
    hub = hub_cls.options(name=hub_name).remote()
    actors = _actors(ray, options, hub_name, len(jobs))
    limit = int(options.ray_media_limit_mb * 1e6)
    probes = OutputProbes([j.output.parent for j in jobs], where) if options.ray_media == "auto" else None
    ship_to: dict[int, bool] = {}  # auto: actor index -> whether it sees the output folder
    pending = list(jobs)
    idle = list(range(len(actors)))
    flight: dict = {}  # ref -> (job, actor index, plan)

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

    def finish(result: JobResult) -> None:
        result = replace(result, attempts=max(1, starts.get(result.job.line, 1)))
        results[result.job.line] = result
        emit(JobFinished(result))

    def shipped_plan(job: Job, output: str) -> Plan:
        request, files = KINDS[job.kind].files(job.request)
        return Plan("shipped", output, shipped=ship(ray, files, limit, where), request=request, limit=limit)

    def submit(job: Job, a: int) -> None:
        try:
            if options.ray_media == "shared-storage":
                plan = Plan()
            elif options.ray_media == "object-store":
                plan = shipped_plan(job, "back")
            elif a in ship_to:
                plan = shipped_plan(job, "in-place" if ship_to[a] else "back")
            else:
                _, files = KINDS[job.kind].files(job.request)
                plan = Plan("check", "probe", fingerprints=tuple(fingerprint(p, where) for _, p in files),
                            probe=probes.names.get(job.output.parent, ""), limit=limit)
        except Exception as exc:  # too big, a script that does not parse, an input gone
            idle.append(a)
            finish(JobResult(job, FAILED, one_line(exc)))
            return
        flight[actors[a].run.remote(job, plan)] = (job, a, plan)

    try:
        while pending or flight:
            while idle and pending:
                submit(pending.pop(0), idle.pop(0))
            if not flight:
                continue
            ready, _ = ray.wait(list(flight), num_returns=1, timeout=PROGRESS_PERIOD_S)
            forward()
            for ref in ready:
                job, a, plan = flight.pop(ref)
                try:
                    answer, files = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died more often than retries allow
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    finish(JobResult(job, FAILED, f"worker lost ({first[:200]})"))
                    continue
                if isinstance(answer, NeedsInputs):  # auto: this worker does not see the files
                    ship_to[a] = answer.output_seen
                    submit(job, a)
                    continue
                idle.append(a)
                if files:
                    try:
                        write_back(files, where)
                    except OSError as exc:
                        answer = replace(answer, status=FAILED, reason=one_line(exc), duration=None)
                    del files
                finish(answer)
            if not idle and not flight and pending:  # every worker is gone for good
                for job in pending:
                    finish(JobResult(job, FAILED, "no Ray worker left to run it"))
                pending = []
    except BaseException:
        _stop(ray, flight, actors, where)
        raise
    finally:
        if probes is not None:
            probes.close()
        for actor in actors + [hub]:
            ray.kill(actor, no_restart=True)
        if joined:
            ray.shutdown()
    return [results[j.line] for j in jobs if j.line in results]


def _stop(ray, flight: dict, actors: list, where: Callable[[Path], Path]) -> None:
    """Interrupted: cancel the running jobs (each removes its partial file at its next progress
    step), wait briefly for them, then sweep what a killed one left."""
    from ..media.mp4 import sweep_partial

    for ref in flight:
        ray.cancel(ref)
    try:
        ray.wait(list(flight), num_returns=len(flight), timeout=10.0)
    except Exception:  # the cluster may be going away too
        pass
    for job, a, _ in flight.values():
        ray.kill(actors[a], no_restart=True)
    for job, _, _ in flight.values():
        try:
            sweep_partial(where(job.output))
        except Exception:  # held by a worker still dying: the next run sweeps it
            pass
