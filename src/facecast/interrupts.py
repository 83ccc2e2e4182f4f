"""Termination signals handled like Ctrl-C: SIGTERM (and SIGHUP) raise ``Terminated``, a
KeyboardInterrupt, so every job cleans up the way it does for Ctrl-C (the hidden partial
output removed, a twin's work folder kept for resuming) and exits with 128 + the signal number.

Public API: ``Terminated``, ``handle_termination()`` (installs the handlers; the CLI calls it),
``interrupt_code(exc) -> int``.
"""

from __future__ import annotations

import signal

__all__ = ["Terminated", "handle_termination", "interrupt_code"]


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: raised like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


def handle_termination() -> None:
    """SIGTERM and SIGHUP interrupt the main thread like Ctrl-C (where nobody set a handler)."""
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise_terminated)


def interrupt_code(exc: BaseException) -> int:
    """Exit code of an interrupted command: 130 for Ctrl-C, 128 + N for signal N."""
    return getattr(exc, "exit_code", 130)
