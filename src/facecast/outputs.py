"""Output paths, checked before any work starts: one rule for every command.

- The folder an output goes into must exist: facecast never creates it (say, twin train, eval
  --json/--markdown, bench --json/--append alike). It creates only its own defaults (demo's
  ``out/``, eval's default ``--plot-dir``) and its work folders next to an output
  (``OUTPUT.twin.work``).
- An output is never one of the job's inputs: not by name, not through a symlink, a hard link
  or another spelling of the same path (``same_file``).

Public API: ``check_output_file(path, *, suffixes, inputs, what) -> Path``,
``check_output_files((flag, path, suffixes), ..., inputs)`` (a command's optional outputs),
``same_file(a, b)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import OutputError

__all__ = ["check_output_file", "check_output_files", "same_file"]


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: the same inode on the same device when both
    exist (symlinks followed, hard links included), else the same absolute path once symlinks
    and ``..`` are resolved."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unreadable folder
        return False


def check_output_file(path: str | Path, *, suffixes: tuple[str, ...] | None = None,
                      inputs: Iterable[tuple[str, object]] = (), what: str = "output") -> Path:
    """``path`` as a Path, or OutputError (naming it) saying what to change.

    suffixes: allowed file types (lower case, with the dot); None = any.
    inputs: (label, input) pairs of the job ("audio", "jfk.wav"); inputs that are not paths
        (arrays, prepared objects) are skipped. The output may not be any of them.
    what: what the file is, for messages ("output", "--json file").
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a directory. Give a file name inside it, e.g. {p / ('output' + (suffixes or ('',))[0])}.")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        shown = f"'{p.suffix}'" if p.suffix else "no extension"
        raise OutputError(f"{p}: unsupported {what} type ({shown}). Use one of {', '.join(suffixes)}.")
    parent = p.parent
    if not parent.exists():
        raise OutputError(
            f"{p}: the folder {parent} does not exist. Create it first (mkdir -p {parent}) or write elsewhere."
        )
    if not parent.is_dir():
        raise OutputError(f"{p}: {parent} is a file, not a folder. Choose an output path inside a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: the folder {parent} is not writable. Choose a folder you can write to.")
    for label, given in inputs:
        if isinstance(given, (str, Path)) and str(given) and same_file(p, given):
            raise OutputError(f"{p}: this is the {label} input ({given}); writing the {what} there would "
                              f"destroy it. Choose another {what} path.")
    return p


def check_output_files(*outputs: tuple[str, str | Path | None, tuple[str, ...] | None], inputs=()) -> None:
    """``check_output_file`` for each (flag, path, suffixes) whose path is given (a command's
    optional output files, e.g. ("--json", path, None)), before any work starts."""
    for flag, path, suffixes in outputs:
        if path is not None:
            check_output_file(path, suffixes=suffixes, inputs=inputs, what=f"{flag} file")
