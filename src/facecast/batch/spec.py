"""Batch job specs, the types: Job, Field (a job field and the option it sets), JobError (one
bad line), SpecError (the batch refused: every bad line). ``read.py`` reads a JSONL file or a
folder of scripts into Jobs; ``kinds.py`` holds each kind's fields.

    {"kind": "say", "portrait": "ana.jpg", "text": "Hello.", "output": "out/ana.mp4", "size": 512}
    {"kind": "dub", "video": "talk.mp4", "audio": "fr.wav", "output": "out/talk_fr.mp4"}
    {"kind": "script", "script": "show.md", "output": "out/show.mp4"}

Fields are the commands' flags with ``_`` for ``-`` (``head_motion``, ``keep_length``); relative
paths are relative to the jobs file's folder. Blank lines and lines starting with ``#`` are
skipped. Each kind's fields and how they map onto its options dataclass live in ``kinds.py``;
the dataclasses' own range checks refuse bad values, reworded here with the line and field.

Whole-batch checks (``read_jobs`` raises ``SpecError`` listing every bad line, the CLI exits 2):
bad JSON, not an object, unknown kind, unknown / missing / ill-typed fields, values out of range,
input files that do not exist, output paths that cannot be written (``outputs.check_output_file``
rules), two jobs writing the same output, and a job writing another job's input.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError, OptionError

__all__ = ["Job", "JobError", "SpecError", "Field", "check_value", "option_error", "is_device_name",
           "MAX_SHOWN_ERRORS"]

MAX_SHOWN_ERRORS = 20
"""A SpecError's message lists at most this many bad lines (and says how many more)."""


@dataclass(frozen=True)
class Job:
    """One job of a batch.

    where: "jobs.jsonl line 3" (or the script's path), for every message about it.
    line: 1-based line in the jobs file (the script's index for a folder), the job's id.
    kind: a registered kind's name.  output: the MP4 it writes.
    inputs: (field, path) of every input file it reads.
    request: the kind's typed request (SayRequest, DubRequest, ScriptRequest in kinds.py).
    """

    where: str
    line: int
    kind: str
    output: Path
    inputs: tuple[tuple[str, Path], ...]
    request: object


class JobError(InputError):
    """One job's spec is wrong: ``where`` (the line) and what."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class SpecError(InputError):
    """The batch is refused: every JobError found, one per line of the message."""

    def __init__(self, errors: list[JobError], source: str) -> None:
        self.errors = errors
        shown = [str(e) for e in errors[:MAX_SHOWN_ERRORS]]
        more = len(errors) - len(shown)
        head = f"{source}: the batch was refused ({len(errors)} problem{'s' if len(errors) != 1 else ''}; " \
               "no job was run). Fix these and run it again:"
        super().__init__("\n".join([head, *("  " + s for s in shown)] + ([f"  ... and {more} more"] if more else [])))


@dataclass(frozen=True)
class Field:
    """A job field: its JSON name, its type ("path", "text", "bool", "number", "name" (a string
    value), "size" (a number or "portrait"), "object"), and the options dataclass field it sets
    ("SayOptions.size"), whose range errors are reworded with the job field's name."""

    name: str
    type: str
    option: str | None = None


def is_device_name(name: object) -> bool:
    """Whether ``name`` spells a device ("cpu", "cuda", "cuda:N", "auto"); whether it works is
    decided where the job runs (a Ray worker may have the GPU the caller lacks)."""
    return isinstance(name, str) and re.fullmatch(r"cpu|auto|cuda(:\d+)?", name) is not None


_TYPE_WORDS = {"path": "a file path (a string)", "text": "a string", "bool": "true or false",
               "number": "a number", "name": "a string", "size": "a number or \"portrait\"",
               "object": "a JSON object"}


def check_value(where: str, field: Field, value: object) -> object:
    """The value of a field, type-checked (numbers pass on to the options' range checks: a
    whole float becomes an int, as the CLI's number flags do)."""
    t = field.type
    ok = {
        "path": isinstance(value, str) and value != "",
        "text": isinstance(value, str),
        "name": isinstance(value, str),
        "bool": isinstance(value, bool),
        "number": isinstance(value, numbers.Real) and not isinstance(value, bool),
        "size": (isinstance(value, numbers.Real) and not isinstance(value, bool)) or value == "portrait",
        "object": isinstance(value, dict),
    }[t]
    if not ok:
        raise JobError(where, f"field \"{field.name}\" = {json.dumps(value)}: must be {_TYPE_WORDS[t]}.")
    if field.name == "device" and not is_device_name(value):
        raise JobError(where, f"field \"device\" = {json.dumps(value)}: must be one of cpu, cuda, cuda:N, auto.")
    if t in ("number", "size") and isinstance(value, float) and math.isfinite(value) and value.is_integer() \
            and abs(value) < 2**53:
        return int(value)
    return value


def option_error(where: str, exc: OptionError, fields: Iterable[Field]) -> JobError:
    """An options dataclass's range error as a JobError naming the job field that set it."""
    for f in fields:
        if f.option == exc.option:
            return JobError(where, f"field \"{f.name}\" = {json.dumps(exc.value)}: must be {exc.rule}.")
    return JobError(where, str(exc))
