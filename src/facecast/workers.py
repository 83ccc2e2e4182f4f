"""Worker processes that die with their parent, however it ends (kill -9 included).

``process_pool(workers)``: a ``ProcessPoolExecutor`` (spawn start method) whose workers each get
a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and a watchdog thread that
exits them once the parent is gone (other systems, and the case the signal misses: it fires when
the *thread* that started the worker ends, so it is only asked for when that is the main
thread). Without this, a killed `say --workers N` left its workers (~425 MB each) and
multiprocessing's resource tracker running. The tracker ends by itself once every process
holding its pipe (the parent and the workers) is gone.

This module is what a worker imports before its initializer runs, so it stays light: the
workers are tied to the parent within about a second of starting, before they load any model.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["process_pool", "tie_to_parent"]

WATCHDOG_PERIOD_S = 0.25


SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes of the numeric libraries (torch, numpy's BLAS), read when they load."""


def process_pool(workers: int, *, single_threaded: bool = False, warm_up=None):
    """A ProcessPoolExecutor of ``workers`` spawned processes tied to this one. All of them start
    here, from the calling thread (not later from whichever thread submits). ``single_threaded``:
    the workers' numeric libraries use one thread each (the workers are the parallelism: a pool
    of N workers with N threads each oversubscribes the cores N times). ``warm_up``: a function
    each worker runs first (its imports); then this returns at once, while the workers start,
    instead of waiting for them."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    main = threading.current_thread() is threading.main_thread()
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    if single_threaded:  # spawned children copy the environment as it is when they start
        os.environ.update({k: "1" for k in SINGLE_THREAD_ENV})
    try:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=tie_to_parent,
                                   initargs=(os.getpid(), main))
        started = [pool.submit(warm_up or int) for _ in range(workers)]  # each submit starts one more worker
        if warm_up is None:
            for f in started:
                f.result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


def tie_to_parent(parent: int, death_signal: bool) -> None:
    """End this process when ``parent`` ends: runs first in every pool worker, and in the
    server's job workers (facecast.serve.worker). ``death_signal``: also arm PR_SET_PDEATHSIG (only
    when the parent started this process from its main thread, see the module docstring)."""
    if death_signal and sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still ends the worker
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watchdog() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_PERIOD_S)
        os._exit(1)

    threading.Thread(target=watchdog, name="facecast-parent-watchdog", daemon=True).start()
