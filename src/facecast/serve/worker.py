"""A job worker process: ``python -m facecast.serve.worker``, started by ``jobs.JobRunner``.

It runs one job at a time, for as long as the server keeps it (so models stay loaded between
jobs), and dies with the server however the server ends (kill -9 included): ``workers.
tie_to_parent`` arms PR_SET_PDEATHSIG and a watchdog on the parent's pid, and a closed stdin
(the server's end of the pipe goes when the server does) ends it too. The server starts it in
a session of its own, so cancelling a job kills its whole process group.

Protocol (JSON lines):
    server -> worker (stdin)     {"job_dir": "DATA/jobs/j_..."}     (job_dir/job.json says what to run)
    worker -> server (stdout)    {"type": "ready"}                  once, after the imports
                                 {"type": "stage", "stage": "render"}
                                 {"type": "progress", "fraction": 0.42}   (None: length unknown)
                                 {"type": "done", "result": "result.mp4"}
                                 {"type": "failed", "error": "one line, as the CLI prints it"}
The worker's own stdout is its stderr: nothing a library prints can break the protocol. Each
job's log (warnings, and the traceback of an unexpected error) goes to job_dir/log.txt.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

PROGRESS_EVERY_S = 0.2


class Channel:
    """The event pipe to the server (the process's original stdout)."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # anything printed from now on goes to the log, not into the protocol
        sys.stdout = sys.stderr
        self._last_progress = 0.0

    def emit(self, event: dict) -> None:
        if event.get("type") == "progress":
            now = time.monotonic()
            if now - self._last_progress < PROGRESS_EVERY_S and (event.get("fraction") or 0) < 1:
                return
            self._last_progress = now
        self._out.write(json.dumps(event) + "\n")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run(job_dir: Path, channel: Channel) -> None:
    from ..errors import FacecastError
    from .kinds import run_job

    handler = logging.FileHandler(job_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
        inputs = {role: job_dir / name for role, name in job["inputs"].items()}
        result = run_job(job["kind"], job["spec"], inputs, job_dir, job["device"], channel.emit)
        channel.emit({"type": "done", "result": result})
    except FacecastError as exc:
        logging.getLogger(__name__).warning("job failed: %s", exc)
        channel.emit({"type": "failed", "error": one_line(exc)})
    except Exception as exc:  # an unexpected error: the traceback goes to the log, one line to the API
        logging.getLogger(__name__).error("unexpected error:\n%s", traceback.format_exc())
        channel.emit({"type": "failed", "error": f"internal error: {type(exc).__name__}: {one_line(exc)} "
                                                  "(the job's log.txt has the details)"})
    finally:
        root.removeHandler(handler)
        handler.close()


def main() -> None:
    from ..workers import tie_to_parent

    # The death signal is safe to arm: the runner starts workers from the server's event-loop
    # thread, which lives exactly as long as the server does.
    tie_to_parent(os.getppid(), True)
    channel = Channel()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import importlib

    importlib.import_module("facecast.pipeline")  # warm: the first job does not pay for the imports

    channel.emit({"type": "ready"})
    for line in sys.stdin:  # EOF: the server closed the pipe or died
        line = line.strip()
        if not line:
            continue
        try:
            job_dir = Path(json.loads(line)["job_dir"])
        except (ValueError, KeyError, TypeError):
            channel.emit({"type": "failed", "error": "internal error: a malformed command reached the worker"})
            continue
        run(job_dir, channel)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
