"""What a batch run reports, as typed messages (the CLI draws them as rich bars and a table):

    JobStarted(job, worker)           a worker took the job (worker: "thread 2", "ray pid 4242")
    JobProgress(job, done, total)     seconds of speech rendered (total None: not known yet)
    JobFinished(result)               JobResult: done / failed (one-line reason) / skipped

``output_complete(path)`` is the resume rule: an output that exists and probes as a whole MP4
(a video track with frames, an audio track) is done; outputs are written atomically, so anything
else at that path is a file facecast did not finish (or someone else's) and is rendered again.
``exit_code(results)`` is the batch's exit status (docs/errors.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .spec import Job

__all__ = ["DONE", "FAILED", "SKIPPED", "JobStarted", "JobProgress", "JobFinished", "JobResult", "Event",
           "output_complete", "exit_code", "EXIT_OK", "EXIT_REFUSED", "EXIT_FAILED", "one_line"]

DONE, FAILED, SKIPPED = "done", "failed", "skipped"

EXIT_OK = 0
"""Every job done, or skipped because its output was already complete."""
EXIT_REFUSED = 2
"""The batch was refused before any job ran (a bad line, a missing input, an unreachable cluster)."""
EXIT_FAILED = 3
"""The batch ran and at least one job failed (the summary names each with its reason)."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended. reason: one line, for failed jobs (and why a job was skipped).
    seconds: wall time of the job. duration: seconds of video written (done and skipped jobs).
    attempts: how many times it was started (Ray retries a job whose worker died).
    transfer: on Ray, how its files moved ("inputs in place, output in place", "inputs shipped,
        output sent back", ...: BatchOptions.ray_media); "" on this machine."""

    job: Job
    status: str
    reason: str = ""
    seconds: float = 0.0
    duration: float | None = None
    worker: str = ""
    attempts: int = 1
    transfer: str = ""


@dataclass(frozen=True)
class JobStarted:
    job: Job
    worker: str
    pid: int = 0
    attempt: int = 1


@dataclass(frozen=True)
class JobProgress:
    job: Job
    done: float
    total: float | None


@dataclass(frozen=True)
class JobFinished:
    result: JobResult


Event = JobStarted | JobProgress | JobFinished


def output_duration(path: Path) -> float | None:
    """Seconds of video in a complete output (video frames and an audio track), else None."""
    if not path.is_file():
        return None
    try:
        from ..media import probe_mp4

        info = probe_mp4(path)
    except Exception:  # not a readable MP4 (av raises its own error kinds): not complete
        return None
    if not info.get("num_frames") or info.get("audio_codec") is None:
        return None
    return info.get("video_duration")


def output_complete(path: Path) -> bool:
    return output_duration(path) is not None


def one_line(exc: BaseException) -> str:
    """An exception as the one-line reason of a failed job: facecast's own messages as they are
    (first line), anything else with its type and a note that it is a bug."""
    from ..errors import FacecastError

    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, FacecastError):
        return text
    if isinstance(exc, OSError) and exc.filename is not None:  # an input gone since the batch was read
        return f"{exc.filename}: {exc.strerror or text}"
    return f"{type(exc).__name__}: {text} (a bug: please report it with the job line)"


def exit_code(results: list[JobResult]) -> int:
    return EXIT_FAILED if any(r.status == FAILED for r in results) else EXIT_OK
