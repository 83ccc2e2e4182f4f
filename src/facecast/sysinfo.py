"""Facts about this machine and process: resident memory (/proc), the CPU, GPU and revision a
measurement ran on. One reader each, for bench, eval, the load tests and doctor."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import threading
import time
from pathlib import Path


def rss_mib(pid: int | str = "self") -> float:
    """VmRSS of one process in MiB; 0 where it is gone or /proc is unavailable (not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid: str = "self") -> list[str]:
    out: list[str] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += f.read().split()
    except OSError:
        pass
    return out


def rss_mb(children: bool = True) -> float:
    """Current resident set size (VmRSS) in MiB, plus that of child processes (alignment
    workers) when ``children``; NaN where /proc is unavailable."""
    kb = _status_kb("VmRSS")
    if kb is None:
        return float("nan")
    return kb / 1024 + (sum(rss_mib(pid) for pid in _children()) if children else 0.0)


def peak_rss_mb() -> float:
    """Peak resident set size (VmHWM) in MiB since start or the last reset_peak_rss()."""
    kb = _status_kb("VmHWM")
    return kb / 1024 if kb is not None else float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs). False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemorySampler:
    """Samples VmRSS every ``interval`` seconds on a daemon thread while in use as a context
    manager: ``samples`` = [(seconds since start, MiB)], including one at start and one at stop."""

    def __init__(self, interval: float = 0.5, children: bool = True) -> None:
        self.interval = interval
        self.children = children  # add the RSS of child processes (alignment workers)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def __enter__(self) -> "MemorySampler":
        self._t0 = time.perf_counter()
        self.samples = [(0.0, rss_mb(self.children))]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="facecast-rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.perf_counter() - self._t0, rss_mb(self.children)))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append((time.perf_counter() - self._t0, rss_mb(self.children)))

    def at_fraction(self, f: float) -> float:
        """RSS (MiB) of the sample nearest to fraction ``f`` of the sampled time."""
        if not self.samples:
            return float("nan")
        end = self.samples[-1][0]
        return min(self.samples, key=lambda s: abs(s[0] - f * end))[1]

    @property
    def peak(self) -> float:
        return max((m for _, m in self.samples), default=float("nan"))


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else platform.processor(); "" where unknown)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return cpu


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def memory_gib() -> float:
    """Total physical memory in GiB (/proc/meminfo; NaN where unavailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def machine_info() -> dict:
    cpu = cpu_name()
    cores = cpu_cores()
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - informational only
        gpu = None
    return {"cpu": cpu, "cores": cores, "gpu": gpu, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "git": git_revision()}


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        rev = out.stdout.strip()
        if rev:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
            return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"
