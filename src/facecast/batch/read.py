"""Reading a batch: a JSONL file (one JSON object per line) or a folder of scripts -> Jobs, every
problem reported with its line before any job runs (a SpecError lists them all).

Whole-batch checks: bad JSON, not an object, unknown kind, unknown / missing / ill-typed fields,
values out of range, input files that do not exist, output paths that cannot be written
(``outputs.check_output_file`` rules), two jobs writing the same output, and a job writing a
file another job reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ..errors import FacecastError, InputError
from ..outputs import same_file
from .kinds import parse_job
from .spec import Job, JobError, SpecError

__all__ = ["read_jobs", "parse_jobs", "script_jobs", "SCRIPT_SUFFIXES"]

SCRIPT_SUFFIXES = (".md",)
"""The files a folder given to `facecast batch` contributes as `script` jobs."""


def parse_jobs(lines: Iterable[str], source: str, base: Path) -> list[Job]:
    """Jobs of a JSONL text (``source`` names it in messages; relative paths start at ``base``).
    Raises SpecError listing every bad line."""
    jobs: list[Job] = []
    errors: list[JobError] = []
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source} line {n}"
        try:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise JobError(where, f"not valid JSON ({exc.msg} at column {exc.colno}). Each line is one JSON "
                               "object, e.g. {\"kind\": \"say\", \"portrait\": \"a.jpg\", \"text\": \"Hi.\", "
                               "\"output\": \"a.mp4\"}.") from None
            if not isinstance(obj, dict):
                raise JobError(where, f"a JSON {type(obj).__name__}, not an object: each line is one job object.")
            jobs.append(parse_job(obj, where, n, base))
        except JobError as exc:
            errors.append(exc)
        except FacecastError as exc:  # an output path the rules refuse
            errors.append(JobError(where, str(exc)))
    if not errors and not jobs:
        errors.append(JobError(source, "no jobs (the file is empty, or only blank and # lines)."))
    errors += cross_checks(jobs)
    if errors:
        raise SpecError(errors, source)
    return jobs


def cross_checks(jobs: list[Job]) -> list[JobError]:
    """Two jobs writing one output, or a job writing a file another job reads."""
    errors: list[JobError] = []
    by_output: dict[Path, Job] = {}
    for job in jobs:
        key = job.output.resolve()
        first = by_output.get(key) or next((j for j in by_output.values() if same_file(j.output, job.output)), None)
        if first is not None:
            errors.append(JobError(job.where, f"output {job.output} is also the output of {first.where}: two jobs "
                                   "would write the same file. Give each job its own output."))
        else:
            by_output[key] = job
    for job in jobs:
        for other in jobs:
            if other is job:
                continue
            for label, path in other.inputs:
                if same_file(job.output, path):
                    errors.append(JobError(job.where, f"output {job.output} is the {label} input of {other.where}; "
                                           "a batch's outputs and inputs must be different files."))
    return errors


def script_jobs(folder: Path, output_dir: Path | None = None) -> list[Job]:
    """One `script` job per script file (SCRIPT_SUFFIXES) in ``folder`` (sorted by name), writing
    NAME.mp4 into ``output_dir`` (default: the folder). Raises SpecError when there are none."""
    folder = folder.absolute()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SCRIPT_SUFFIXES)
    out = (output_dir or folder).absolute()
    jobs, errors = [], []
    for i, path in enumerate(files, start=1):
        try:
            jobs.append(parse_job({"kind": "script", "script": str(path), "output": str(out / f"{path.stem}.mp4")},
                                  str(path), i, folder))
        except FacecastError as exc:
            errors.append(exc if isinstance(exc, JobError) else JobError(str(path), str(exc)))
    if not files:
        errors.append(JobError(str(folder), f"no scripts in this folder (files ending {', '.join(SCRIPT_SUFFIXES)})."))
    errors += cross_checks(jobs)
    if errors:
        raise SpecError(errors, str(folder))
    return jobs


def read_jobs(path: str | Path, output_dir: str | Path | None = None) -> list[Job]:
    """The jobs of a JSONL file, or of a folder of scripts. Raises InputError when ``path`` cannot
    be read, SpecError (listing every bad line) when any job is wrong."""
    p = Path(path)
    if p.is_dir():
        return script_jobs(p, Path(output_dir) if output_dir is not None else None)
    if output_dir is not None:
        raise InputError("--output-dir goes with a folder of scripts; a jobs file names each job's output.")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file. Give a jobs file (.jsonl, one JSON object per line) or a folder "
                         "of scripts.") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read it ({exc.strerror}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{p} line {line}: not UTF-8 text. Save the jobs file as UTF-8.") from None
    return parse_jobs(text.splitlines(), str(p), p.parent.absolute())  # absolute: workers run elsewhere
