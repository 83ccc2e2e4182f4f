"""ServeOptions: everything `facecast serve` needs, a frozen dataclass like the core options
(each field with its unit and range, checked on construction: OptionError naming the field).

Nothing here imports FastAPI: the CLI builds the options, ``serve.app.create_app`` takes them.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import OptionError
from ..options import Range, check_ranges

__all__ = ["LOOPBACK_HOSTS", "ServeOptions", "is_loopback"]

LOOPBACK_HOSTS = ("localhost",)
"""Host names taken as loopback besides the loopback addresses (127.0.0.0/8, ::1)."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine: "localhost", 127.x.x.x or ::1.
    "0.0.0.0", "::", a LAN address or any other name is not."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """The server's settings (`facecast serve` flags of the same names).

    host: address to bind; loopback ("127.0.0.1", the default) needs no token, any other needs
        ``token_file`` (``check_security``).
    port: TCP port, 0 ... 65535 (0 = any free port).
    data_dir: folder of the job store (SQLite, WAL) and of every uploaded and produced file;
        created when missing. Default ./facecast-data.
    token_file: a text file of bearer tokens, one per line (blank lines and lines starting with #
        ignored; each at least 16 characters). None: no token (loopback only). When given, every
        request needs one of them, on loopback too.
    device: where jobs render and twins train: "cpu", "cuda", "cuda:N" or "auto".
    live_streams: most live sessions at once on this server, 0 ... 1024 (0 = live off).
    max_upload_mb: largest uploaded file, MiB, > 0 ... 65536 (default 512: minutes of 1080p
        video); a bigger one is refused with 413 as soon as it passes the cap.
    max_spec_kb: largest `spec` JSON field of a job, KiB, 1 ... 1024.
    max_concurrent_jobs: jobs running at once, each in its own worker process, 1 ... 64 (default
        1: one job already keeps two cores busy).
    max_jobs_per_token: queued + running jobs one token may have, 1 ... 100000; past it 429.
    max_live_per_token: live sessions one token may hold, 0 ... 1024; past it the session is
        refused: an `error` event, then close code 4429 (docs/serving-live.md).
    max_job_attempts: a job whose worker the server lost (a crash, kill -9 of the server) is
        re-queued up to this many starts in all, 1 ... 100, then fails.
    cors_origins: origins allowed by CORS, e.g. ("https://app.example",); empty = CORS off (the
        default: browsers refuse cross-origin calls).
    progress_interval_s: seconds, 0.05 ... 60: most often a running job's progress is written to
        the store (events reach SSE listeners at once either way).
    worker_idle_s: seconds, 1 ... 604800: a job worker with no job for this long exits (a warm
        worker holds ~1 GB of models); the next job starts a fresh one (a few seconds).
    live_size: frame width = height of every live session, pixels, even, 64 ... 2048 (one Engine
        per server renders at one size; a twin's longer side is scaled to it). (serve/live.py)
    live_workers, live_encoders: the live Engine's motion worker processes (0 ... 64; 0 = in the
        server process) and fMP4 encoder processes (1 ... 64); None = sized by the machine (1 and 1
        on a CPU; on CUDA ~1 per 3 cores, at most 8, and 1 per 4 cores, at most 4). (serve/live.py)
    live_max_late: admit no new live session while more than this share of the frames the
        running ones sent in the last 5 s was late, 0 ... 1 (1 = always admit up to
        live_streams): a machine that is behind already refuses instead of slowing everyone.
        (serve/live_hub.py)
    live_preload: start the live Engine (its processes, the voice) in the background as the
        server starts; False: the first live session starts it (seconds: its "started" event
        says how many). (serve/live.py)
    """

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: str = "facecast-data"
    token_file: str | None = None
    device: str = "cpu"
    live_streams: int = 4
    max_upload_mb: float = 512.0
    max_spec_kb: int = 64
    max_concurrent_jobs: int = 1
    max_jobs_per_token: int = 100
    max_live_per_token: int = 4
    max_job_attempts: int = 3
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    progress_interval_s: float = 1.0
    worker_idle_s: float = 600.0
    # live sessions (serve/live.py, serve/live_hub.py)
    live_size: int = 512
    live_workers: int | None = None
    live_encoders: int | None = None
    live_max_late: float = 0.1
    live_preload: bool = False

    RANGES: ClassVar[dict] = {
        "port": Range(0, 65535, integer=True),
        "live_streams": Range(0, 1024, "sessions", integer=True),
        "max_upload_mb": Range(0, 65536, "MiB", lo_open=True),
        "max_spec_kb": Range(1, 1024, "KiB", integer=True),
        "max_concurrent_jobs": Range(1, 64, "jobs", integer=True),
        "max_jobs_per_token": Range(1, 100000, "jobs", integer=True),
        "max_live_per_token": Range(0, 1024, "sessions", integer=True),
        "max_job_attempts": Range(1, 100, "starts", integer=True),
        "progress_interval_s": Range(0.05, 60, "s"),
        "worker_idle_s": Range(1, 604800, "s"),
        "live_size": Range(64, 2048, "pixels", integer=True, step=2),
        "live_workers": Range(0, 64, "processes", integer=True, optional=True),
        "live_encoders": Range(1, 64, "processes", integer=True, optional=True),
        "live_max_late": Range(0, 1, "share of frames"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if not isinstance(self.host, str) or not self.host:
            raise OptionError("ServeOptions.host", self.host, "a host name or IP address")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise OptionError("ServeOptions.device", self.device, "one of cpu, cuda, cuda:N, auto")
        if not isinstance(self.cors_origins, tuple) or not all(isinstance(o, str) and o for o in self.cors_origins):
            raise OptionError("ServeOptions.cors_origins", self.cors_origins, "a tuple of origins (strings)")

    @property
    def max_upload_bytes(self) -> int:
        return int(math.floor(self.max_upload_mb * 2**20))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)
