"""BatchOptions: how a batch runs (each field with its unit and range, checked on construction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Choice, Range, check_ranges

__all__ = ["BatchOptions", "RAY_MEDIA"]

RAY_MEDIA = ("auto", "shared-storage", "object-store")
"""How a Ray job's files reach its worker (``BatchOptions.ray_media``; docs/scaling.md)."""


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs (what each job renders is its own line's business).

    jobs: jobs rendered at once on this machine, 1 ... 64 (threads of one process sharing the
        warm models and one CUDA device; None = 1); with ``ray``: the most jobs in flight on the
        cluster, None = one per worker actor.
    device: where jobs without a "device" field render: "cpu", "cuda", "cuda:N" or "auto"
        (with ``ray``: each worker actor's own, "cuda" on actors given a GPU).
    force: render every job again, even those whose output is already complete (default: skip
        them, which makes re-running an interrupted batch resume it).
    ray: None (this machine), "auto" (the Ray cluster this machine belongs to, or a local one
        started for the batch), or a cluster address "HOST:PORT".
    ray_cpus: CPUs each Ray worker actor reserves, 1 ... 256 (a job uses about 2: rendering and
        its encoder thread; more when its phone workers or encoders are raised).
    retries: times a job is started again on Ray when its worker process dies (the actor is
        restarted with it), 0 ... 100.
    ray_media: how a Ray job's files reach its worker: "shared-storage" (paths on storage every node
        sees: the worker reads the inputs and writes the output there), "object-store" (the
        caller ships the inputs' bytes through Ray's object store into a temporary folder on the
        worker, and the output's bytes come back and are written by the caller) or "auto" (per
        job: inputs read in place when the worker sees each at the same path with the same size
        and the same first and last MiB, else shipped; the output written in place when the
        worker sees the caller's marker file in the output's folder, else streamed back).
    ray_media_limit_mb: the most megabytes (10^6 bytes) one job may ship through the object
        store, 1 ... 65536, counted separately for its inputs and for its outputs; a job over it
        fails with that reason (the others go on). The store holds at most (jobs in flight) x
        this much at once.
    """

    jobs: int | None = 1
    device: str = "cpu"
    force: bool = False
    ray: str | None = None
    ray_cpus: float = 1.0
    retries: int = 3
    ray_media: str = "auto"
    ray_media_limit_mb: float = 2048.0

    RANGES: ClassVar[dict] = {
        "ray_media": Choice(RAY_MEDIA),
        "ray_media_limit_mb": Range(1, 65536, "MB"),
        "jobs": Range(1, 64, "jobs", integer=True, optional=True),
        "ray_cpus": Range(1, 256, "CPUs"),
        "retries": Range(0, 100, integer=True),
    }

    def __post_init__(self) -> None:
        from ..errors import OptionError
        from .spec import is_device_name

        check_ranges(self)
        if not is_device_name(self.device):
            raise OptionError("BatchOptions.device", self.device, "one of cpu, cuda, cuda:N, auto")
