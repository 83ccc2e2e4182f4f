"""BatchOptions: how a batch runs (each field with its unit and range, checked on construction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Range, check_ranges

__all__ = ["BatchOptions"]


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
    """

    jobs: int | None = 1
    device: str = "cpu"
    force: bool = False
    ray: str | None = None
    ray_cpus: float = 1.0
    retries: int = 3

    RANGES: ClassVar[dict] = {
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
