"""The command line: the only place that parses arguments. Everything below it takes options
dataclasses. Errors facecast raises on purpose print as one line and exit with code 2."""

from __future__ import annotations

import sys

from ..interrupts import handle_termination, interrupt_code
from . import say, dub, script, batch, live, quality, twin, serve  # this order: the order of `facecast --help`
from .app import app, quiet_native_logs

__all__ = ["app", "main"]

COMMANDS = (say, dub, script, batch, live, quality, twin, serve)  # importing each registers its commands on the app


def main() -> None:
    quiet_native_logs()
    handle_termination()
    try:
        app()
    except KeyboardInterrupt as exc:
        sys.exit(interrupt_code(exc))


if __name__ == "__main__":
    main()
