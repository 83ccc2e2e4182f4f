"""The job runner: a queue in the store, worker processes that run the jobs, events to listeners.

- Jobs are queued in the store (``status = queued``) by the API; ``wake()`` starts as many as
  ``options.max_concurrent_jobs`` allows, oldest first, each in a worker process
  (``python -m facecast.serve.worker``: models stay loaded between jobs; a worker dies with
  the server, kill -9 included, see worker.py).
- A worker reports stage, progress, done and failed (worker.py's protocol); the runner keeps
  the store up to date (progress at most every ``options.progress_interval_s``, every status
  change at once) and passes each event to the job's subscribers (the SSE endpoint).
- ``cancel(job_id)``: a queued job is marked cancelled; a running one's worker process group is
  killed (SIGKILL), then it is marked cancelled. Either way its partial files are removed.
- ``start()`` re-queues the jobs a lost server was running (they run again: say/dub from the
  start, a twin from its work folder's checkpoint); one started ``max_job_attempts`` times
  already fails instead. ``stop()`` kills the workers and leaves their jobs ``running`` in the
  store, so the next start re-queues them.

Public API: ``JobRunner``, ``clear_outputs(job_dir)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .kinds import TWIN_WORK
from .options import ServeOptions
from .store import Face, Job, Store, new_id

__all__ = ["JobRunner", "TERMINAL", "clear_outputs"]

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "cancelled")
WORKER_START_S = 180.0


def clear_outputs(job_dir: Path) -> None:
    """Remove what a job that did not finish wrote: its result, hidden partial files, the twin
    work folder. Inputs, job.json and log.txt stay."""
    if not job_dir.is_dir():
        return
    for p in job_dir.iterdir():
        if p.name.startswith("result.") or ".partial" in p.name or p.name.startswith(".result"):
            p.unlink(missing_ok=True)
    shutil.rmtree(job_dir / TWIN_WORK, ignore_errors=True)


@dataclass(eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    job_id: str | None = None
    idle_since: float = 0.0

    def kill(self) -> None:
        """SIGKILL to the worker's whole process group (it leads a session of its own); nothing
        once it has been reaped (its pid may belong to someone else by then)."""
        if self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def reap(self) -> None:
        """Wait for the killed worker and close its pipe (also when this wait is cancelled)."""
        try:
            await self.proc.wait()
        finally:
            if self.proc.stdin is not None:
                self.proc.stdin.close()


@dataclass
class _Live:
    """What the runner knows of a running job beyond the store."""

    job: Job
    worker: _Worker
    started: float
    stage: str = "starting"
    fraction: float = 0.0
    eta_s: float | None = None
    saved_at: float = 0.0
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class JobRunner:
    def __init__(self, store: Store, options: ServeOptions) -> None:
        self.store, self.options = store, options
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()  # every worker process not yet reaped, whatever it does
        self._running: dict[str, _Live] = {}
        self._cancelling: set[str] = set()
        self._subscribers: dict[str, set[asyncio.Queue]] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        for job_id in self.store.requeue_running():
            job = self.store.get_job(job_id)
            if job is not None and job.attempts >= self.options.max_job_attempts:
                self._finish(job, "failed", error=f"the server stopped during this job {job.attempts} times; "
                                                  "not started again. Submit it again to retry.")
            else:
                log.warning("job %s: the server stopped while it ran; re-queued", job_id)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = asyncio.create_task(self._schedule(), name="facecast-jobs")

    async def stop(self) -> None:
        """Kill every worker; running jobs stay ``running`` in the store (re-queued at the next start)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        for t in list(self._tasks):  # first the tasks, so that none starts a worker after the sweep
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers = [w for w in self._workers if w.proc.returncode is None or not w.proc.stdin.is_closing()]
        for w in workers:
            w.kill()
        for w in workers:
            await w.reap()
        self._workers.clear()
        self._idle.clear()

    def wake(self) -> None:
        """A job was queued: start what fits."""
        if self._wake is not None:
            self._wake.set()

    # -- facts -----------------------------------------------------------------------------
    @property
    def running(self) -> int:
        return len(self._running)

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._idle] + [live.worker.proc.pid for live in self._running.values()
                                                   if live.worker is not None]

    def live_view(self, job: Job) -> Job:
        """``job`` with the running job's latest progress (the store gets it at most every
        ``progress_interval_s``)."""
        live = self._running.get(job.id)
        if live is None or job.status != "running":
            return job
        from dataclasses import replace

        return replace(job, stage=live.stage, progress=live.fraction, eta_s=live.eta_s)

    # -- events ----------------------------------------------------------------------------
    def subscribe(self, job_id: str) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers.setdefault(job_id, set()).add(q)
        return q

    def unsubscribe(self, job_id: str, q: asyncio.Queue) -> None:
        subs = self._subscribers.get(job_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subscribers[job_id]

    def _publish(self, job_id: str, event: str, **data) -> None:
        for q in self._subscribers.get(job_id, ()):
            if not q.full():
                q.put_nowait((event, {"id": job_id, **data}))

    # -- cancel ----------------------------------------------------------------------------
    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a finished one is returned unchanged)."""
        job = self.store.get_job(job_id)
        if job is None or job.status in TERMINAL:
            return job
        live = self._running.get(job_id)
        if live is None:  # queued: nothing runs it (starting one is synchronous, so no race)
            self._finish(job, "cancelled", error="cancelled")
        else:
            self._cancelling.add(job_id)
            if live.worker is not None:  # else _run kills it as soon as it has started
                live.worker.kill()
            await live.finished.wait()
        return self.store.get_job(job_id)

    # -- scheduling ------------------------------------------------------------------------
    async def _schedule(self) -> None:
        while True:
            free = self.options.max_concurrent_jobs - len(self._running)
            try:
                for job in self.store.queued(free) if free > 0 else ():
                    self._begin(job)
            except Exception:  # a store error must not end the scheduler: log it, try again
                log.exception("the job scheduler failed to start a job")
            await self._retire_idle()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _end(self, worker: _Worker) -> None:
        """Kill a worker, wait for it, and forget it."""
        worker.kill()
        await worker.reap()
        self._workers.discard(worker)

    async def _retire_idle(self) -> None:
        """End workers that had no job for ``options.worker_idle_s`` (their models hold memory)."""
        now = time.monotonic()
        for w in [w for w in self._idle if now - w.idle_since > self.options.worker_idle_s]:
            self._idle.remove(w)
            await self._end(w)

    def _begin(self, job: Job) -> None:
        now = time.time()
        self.store.update_job(job.id, status="running", started_at=now, attempts=job.attempts + 1,
                              stage="starting", progress=0.0, eta_s=None, error=None)
        job = self.store.get_job(job.id)
        live = _Live(job=job, worker=None, started=time.monotonic())  # type: ignore[arg-type]
        self._running[job.id] = live
        self._publish(job.id, "running", status="running", stage="starting", progress=0.0, attempt=job.attempts)
        task = asyncio.create_task(self._run(live), name=f"job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> _Worker:
        logf = open(self.store.root / "worker.log", "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "facecast.serve.worker", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=logf, start_new_session=True)
        finally:
            logf.close()
        worker = _Worker(proc)
        self._workers.add(worker)  # stop() kills it, whatever happens to this task
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), WORKER_START_S)
            if json.loads(line or b"{}").get("type") != "ready":
                raise RuntimeError("no ready message")
        except asyncio.CancelledError:
            await self._end(worker)
            raise
        except (asyncio.TimeoutError, ValueError, RuntimeError) as exc:
            await self._end(worker)
            raise RuntimeError(f"the job worker did not start ({exc}); {self.store.root / 'worker.log'} "
                               "has its output") from None
        return worker

    async def _run(self, live: _Live) -> None:
        job = live.job
        try:
            live.worker = self._idle.pop() if self._idle else await self._spawn()
        except (RuntimeError, OSError) as exc:
            self._running.pop(job.id, None)
            self._finish(job, "failed", error=str(exc))
            live.finished.set()
            self.wake()
            return
        if job.id in self._cancelling:  # cancelled while the worker started
            live.worker.kill()
        worker, outcome = live.worker, None
        worker.job_id = job.id
        try:
            cmd = json.dumps({"job_dir": str(self.store.job_dir(job.id))}) + "\n"
            worker.proc.stdin.write(cmd.encode())
            await worker.proc.stdin.drain()
            while outcome is None:
                line = await worker.proc.stdout.readline()
                if not line:
                    break
                outcome = self._event(live, json.loads(line))
        except (ConnectionError, ValueError) as exc:
            log.warning("job %s: lost its worker (%s)", job.id, exc)
        except asyncio.CancelledError:
            if self._stopping:
                return
            raise
        finally:
            if not self._stopping:
                self._running.pop(job.id, None)
        if self._stopping:
            return
        if outcome is not None and worker.proc.returncode is None and job.id not in self._cancelling:
            worker.job_id, worker.idle_since = None, time.monotonic()
            self._idle.append(worker)
        else:
            await self._end(worker)
        if job.id in self._cancelling:
            self._cancelling.discard(job.id)
            self._finish(job, "cancelled", error="cancelled")
        elif outcome is None:
            code = worker.proc.returncode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._finish(job, "failed", error=f"the job's worker process ended unexpectedly ({how}); its log.txt "
                                              "may say why")
        elif outcome[0] == "done":
            self._done(job, outcome[1])
        else:
            self._finish(job, "failed", error=outcome[1])
        live.finished.set()
        self.wake()

    def _event(self, live: _Live, ev: dict) -> tuple[str, str] | None:
        """Handle one worker event; ("done", result) / ("failed", error) when the job ended."""
        kind = ev.get("type")
        job_id = live.job.id
        if kind == "stage":
            live.stage = str(ev.get("stage"))
            self._publish(job_id, "stage", status="running", stage=live.stage, progress=live.fraction)
            self.store.update_job(job_id, stage=live.stage)
        elif kind == "progress":
            f = ev.get("fraction")
            if isinstance(f, (int, float)):
                live.fraction = max(live.fraction, min(1.0, float(f)))
                elapsed = time.monotonic() - live.started
                live.eta_s = elapsed * (1 - live.fraction) / live.fraction if live.fraction > 0.02 else None
            self._publish(job_id, "progress", status="running", stage=live.stage, progress=live.fraction,
                          eta_s=live.eta_s)
            now = time.monotonic()
            if now - live.saved_at >= self.options.progress_interval_s:
                live.saved_at = now
                self.store.update_job(job_id, progress=live.fraction, eta_s=live.eta_s)
        elif kind == "done":
            return ("done", str(ev.get("result")))
        elif kind == "failed":
            return ("failed", str(ev.get("error")))
        return None

    def _done(self, job: Job, result: str) -> None:
        job_dir = self.store.job_dir(job.id)
        path = job_dir / result
        if "/" in result or not path.is_file():
            self._finish(job, "failed", error="internal error: the worker reported a result that is not there")
            return
        if job.kind == "twin_train":
            self._register_twin(job, path)
            shutil.rmtree(job_dir / TWIN_WORK, ignore_errors=True)
        self.store.update_job(job.id, status="done", progress=1.0, stage="done", eta_s=0.0, result=result,
                              finished_at=time.time(), error=None)
        self._publish(job.id, "done", status="done", progress=1.0, result=f"/v1/jobs/{job.id}/result")

    def _register_twin(self, job: Job, path: Path) -> None:
        """A trained twin becomes a face of its owner (GET /v1/faces), linked to its job."""
        face_id = new_id("f")
        folder = self.store.face_dir(face_id)
        folder.mkdir(parents=True)
        try:
            os.link(path, folder / "face.twin")
        except OSError:
            shutil.copyfile(path, folder / "face.twin")
        self.store.add_face(Face(id=face_id, owner=job.owner, kind="twin", file="face.twin",
                                 name=f"twin of job {job.id}", bytes=path.stat().st_size, created_at=time.time(),
                                 job_id=job.id))

    def _finish(self, job: Job, status: str, *, error: str) -> None:
        clear_outputs(self.store.job_dir(job.id))
        self.store.update_job(job.id, status=status, error=error, finished_at=time.time(), eta_s=None,
                              stage=status)
        self._publish(job.id, status, status=status, error=error)
