"""Native libraries' own stderr lines (mediapipe's TFLite/absl: "INFO: Created TensorFlow Lite
XNNPACK delegate", "W0000 ... inference_feedback_manager.cc", "WARNING: All log messages before
absl::InitializeLog() ..."), silenced at the file-descriptor level, where Python's logging
switches do not reach. The CLI promises one ``error:`` line; these would break it.

- ``quiet_native_stderr()``: fd 2 points at /dev/null inside the block. Re-entrant and
  thread-safe: fd 2 is restored when the last thread leaves (other threads' stderr writes in
  the meantime are lost too, so keep the blocks short: native calls only).
- ``start_graph(make, warm_up)``: build a native graph and run it once on a blank input inside
  the quiet block. mediapipe opens a graph's TFLite models on its own threads *after* the
  constructor returns, and they log then, outside any block around the constructor; a first
  run waits for them.

Set FACECAST_NATIVE_LOGS=1 to see the lines.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

__all__ = ["quiet_native_stderr", "start_graph"]

T = TypeVar("T")

_lock = threading.Lock()
_depth = 0
_saved: int | None = None


def _enter() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            try:
                saved = os.dup(2)
            except OSError:  # no real fd 2 (embedded interpreters, some test runners)
                _depth += 1
                return
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            _saved = saved
        _depth += 1


def _leave() -> None:
    global _depth, _saved
    with _lock:
        _depth -= 1
        if _depth == 0 and _saved is not None:
            os.dup2(_saved, 2)
            os.close(_saved)
            _saved = None


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while native code (mediapipe, TFLite) runs in the block."""
    if os.environ.get("FACECAST_NATIVE_LOGS") == "1":
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()


def start_graph(make: Callable[[], T], warm_up: Callable[[T], object] | None = None) -> T:
    """``make()`` a native graph and, if given, ``warm_up(graph)`` (one run on a blank input),
    both with native stderr silenced, so that the graph's models are open (and have logged)
    before the block ends."""
    with quiet_native_stderr():
        graph = make()
        if warm_up is not None:
            warm_up(graph)
    return graph
