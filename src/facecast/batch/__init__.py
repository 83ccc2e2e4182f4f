"""`facecast batch`: many jobs (say, dub, script) from a JSONL file or a folder of scripts, with
warm models, N at a time on this machine or on a Ray cluster.

    jobs = read_jobs("jobs.jsonl")                  # SpecError (every bad line) before anything runs
    results = run_batch(jobs, BatchOptions(jobs=2), on_event=...)   # JobStarted/JobProgress/JobFinished
    exit_code(results)                              # 0 all done or skipped, 3 some failed

Modules, lower to higher: spec (Job, Field, JobError, SpecError), kinds (the kind registry: say,
dub, script), read (JSONL / folder -> Jobs), events (typed progress, JobResult, the resume and
exit rules), options (BatchOptions), warm (Worker: what stays loaded between jobs), local (the
local runner, run_batch), transfer (a Ray job's files through the object store), ray_runner (the
same jobs as Ray actors). The CLI is cli/batch.py;
docs/scaling.md says how to run it on a cluster.

The names load their modules on first use, so `import facecast.batch` is cheap.
"""

__all__ = ["read_jobs", "run_batch", "BatchOptions", "Job", "JobResult", "SpecError", "exit_code"]

_LAZY = {"read_jobs": "read", "run_batch": "local", "BatchOptions": "options", "Job": "spec", "JobResult": "events",
         "SpecError": "spec", "exit_code": "events"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast.batch' has no attribute {name!r}")
