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


class NoFaceError(InputError):
    """No usable face was found in an image or video."""


class OutputError(FacecastError):
    """The output cannot be written where asked."""


class DeviceError(FacecastError):
    """The requested compute device cannot be used."""


class ModelError(FacecastError):
    """A bundled or saved model is missing, damaged or of the wrong format."""
