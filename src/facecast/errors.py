"""facecast's error hierarchy.

Every error message names the file (or input), what is wrong with it, and what to do. The CLI
prints ``str(error)`` as one line and exits with ``error.exit_code``; nothing else is caught.
"""

from __future__ import annotations


class FacecastError(Exception):
    """Base of all errors facecast raises on purpose."""

    exit_code = 2


class InputError(FacecastError):
    """An input file or value cannot be used (unreadable, wrong format, empty, too large ...)."""


class OptionError(InputError, ValueError):
    """An option value outside its documented range (also a ValueError, as Python callers expect
    of a bad argument). ``option`` names it as the dataclass field ("MotionOptions.head_motion"),
    ``value`` is what was given and ``rule`` says what is allowed ("a number in 0 ... 3");
    the CLI rewords it with its own flag name (``for_flag``; an ``option`` that is a flag,
    "--crf", is worded that way from the start)."""

    def __init__(self, option: str, value: object, rule: str, *, none_ok: bool = False) -> None:
        self.option, self.value, self.rule, self.none_ok = option, value, rule, none_ok
        if option.startswith("--"):  # a command-line flag: "--crf 99: must be ..."
            super().__init__(f"{option} {value}: must be {rule}.")
        else:
            super().__init__(f"{option} = {value!r}: must be {rule}{' (or None)' if none_ok else ''}.")

    def for_flag(self, flag: str, value: object | None = None) -> "OptionError":
        """The same error worded for a command-line flag: "--crf 99: must be ...". ``value``:
        the value as the user typed it (default: the value the dataclass got)."""
        err = OptionError(self.option, self.value, self.rule, none_ok=self.none_ok)
        err.args = (f"{flag} {self.value if value is None else value}: must be {self.rule}.",)
        return err


class NoFaceError(InputError):
    """No usable face was found in an image or video."""


class OutputError(FacecastError):
    """The output cannot be written where asked."""


class DeviceError(FacecastError):
    """The requested compute device cannot be used."""


class ModelError(FacecastError):
    """A bundled or saved model is missing, damaged or of the wrong format."""
