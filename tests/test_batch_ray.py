"""`facecast batch --ray`: against a local Ray cluster this test starts on this machine with 2 CPUs
(torn down at the end, whatever happens, and checked to leave no process behind): outputs equal
the local runner's byte for byte (files in place: the default "auto" on one machine; and shipped
through the object store to workers that cannot read the caller's paths), a killed worker's job
is started again and completes, a job over the object-store limit fails alone, the workers' job
folders are removed, and an unreachable address refuses the batch (exit 2). Tiny jobs: 128x128,
1.5 s of speech."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import numpy as np

from facecast.audio import write_wav
from facecast.batch.events import DONE, FAILED, JobStarted
from facecast.batch.local import run_batch
from facecast.batch.options import BatchOptions
from facecast.batch.read import read_jobs
from facecast.batch.transfer import jobs_root
from facecast.errors import InputError
from test_batch_jobs import jobs_file, run_cli, say_job, speech_clips

ray = pytest.importorskip("ray")


def _our_processes(marker: str) -> list[int]:
    """Pids of processes whose command line names ``marker`` (the cluster's own temp folder)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if marker in line]


@pytest.fixture(scope="module")
def cluster():
    """A single-node 2-CPU Ray cluster of this machine in its own short temp folder (Unix socket
    paths must stay under ~100 characters); its GCS address. Asked for 127.0.0.1, Ray binds the
    machine's own address instead (ray._private.services.resolve_ip_for_localhost), so the
    loopback address is not passed; no other node joins it."""
    tmp = tempfile.mkdtemp(prefix="fcray")
    t0 = time.perf_counter()
    try:
        ctx = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp,
                       object_store_memory=80 * 1024 * 1024, log_to_driver=False)
        print(f"ray cluster up in {time.perf_counter() - t0:.1f} s")
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()
        left = []
        for _ in range(50):  # Ray's own processes end within a few seconds of shutdown
            left = _our_processes(tmp)
            if not left:
                break
            time.sleep(0.1)
        for pid in left:  # ours by their temp folder, ended one by one
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory):
    """The reference: the jobs run by the local runner."""
    from conftest import media

    folder = tmp_path_factory.mktemp("local")
    (folder / "sam.jpg").write_bytes(media("portrait/sam_512.jpg").read_bytes())
    speech_clips(folder)
    jobs = read_jobs(jobs_file(folder, say_job("a.mp4"), say_job("b.mp4", audio="s2.wav", seed=5)))
    assert [r.status for r in run_batch(jobs, BatchOptions())] == [DONE, DONE]
    return folder


def _copy_inputs(src, dst):
    for name in ("sam.jpg", "s1.wav", "s2.wav"):
        shutil.copy(src / name, dst / name)


def test_ray_outputs_equal_the_local_runners(cluster, local_outputs, tmp_path):
    """Through the CLI, joining the cluster by its address: the same bytes as the local runner
    (audio jobs are deterministic: the same frames, the same x264 settings and muxer); a text
    job only completes (the Piper voice samples noise: its audio, and so its frames, differ from
    run to run even locally)."""
    _copy_inputs(local_outputs, tmp_path)
    jobs_file(tmp_path, say_job("a.mp4"), say_job("b.mp4", audio="s2.wav", seed=5),
              {"kind": "say", "portrait": "sam.jpg", "text": "Hi there.", "output": "c.mp4", "size": 128})
    t0 = time.perf_counter()
    r = run_cli("batch", "jobs.jsonl", "--ray", cluster, cwd=tmp_path)
    print(f"batch on ray: {time.perf_counter() - t0:.1f} s")
    assert r.returncode == 0, r.stderr
    assert "3 done, 0 failed, 0 skipped" in r.stderr
    # --ray-media auto on one machine: every worker sees the files, nothing goes through the store
    assert "on Ray: 3 jobs with inputs in place, output in place" in r.stderr, r.stderr
    assert not list(tmp_path.glob(".facecast-probe-*"))  # the caller's marker files are removed
    r = run_cli("batch", "jobs.jsonl", "--ray", cluster, "--ray-media", "object-store", cwd=tmp_path)
    assert r.returncode == 0 and "0 done, 0 failed, 3 skipped" in r.stderr, r.stderr  # resumes: nothing to do
    for name in ("a.mp4", "b.mp4"):
        assert (tmp_path / name).read_bytes() == (local_outputs / name).read_bytes(), name
    from facecast.batch.events import output_complete

    assert output_complete(tmp_path / "c.mp4")


def _moved_away(local_outputs, tmp_path, *lines):
    """Jobs read in tmp_path/a, whose folder is then renamed tmp_path/b: the jobs name paths
    that nobody can read any more; the caller reaches its files through ``where``. A worker that
    read an input or wrote an output at a job's own path would fail."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    _copy_inputs(local_outputs, a)
    write_wav(a / "big.wav", np.zeros(int(70 * 16000), np.float32))  # 2.24 MB: over a 1 MB limit
    jobs = read_jobs(jobs_file(a, *lines))
    a.rename(b)
    return jobs, a, b, (lambda p: b / p.relative_to(a))


def _job_folders(pids) -> list:
    root = jobs_root()
    return [d for d in root.iterdir() if d.name.split("-", 1)[0] in {str(p) for p in pids}] if root.is_dir() else []


def test_object_store_jobs_never_touch_the_callers_paths(cluster, local_outputs, tmp_path):
    """--ray-media object-store: inputs shipped to each worker's job folder, the output sent back
    and written by the caller; the same bytes as the local runner. A job whose inputs are over
    --ray-media-limit fails with its one-line reason, a job that fails on its worker reports its
    reason with the caller's paths, the others complete; every job folder is removed."""
    from facecast.batch.ray_runner import run_ray

    jobs, a, b, where = _moved_away(local_outputs, tmp_path, say_job("a.mp4"),
                                    say_job("b.mp4", audio="s2.wav", seed=5), say_job("big.mp4", audio="big.wav"),
                                    {"kind": "say", "portrait": "s1.wav", "audio": "s1.wav", "output": "bad.mp4",
                                     "size": 128})
    started = []
    results = run_ray(jobs, BatchOptions(ray=cluster, ray_media="object-store", ray_media_limit_mb=1),
                      lambda e: started.append(e) if isinstance(e, JobStarted) else None, where)
    assert [r.status for r in results] == [DONE, DONE, FAILED, FAILED], [r.reason for r in results]
    for name in ("a.mp4", "b.mp4"):
        assert (b / name).read_bytes() == (local_outputs / name).read_bytes(), name
    assert results[0].transfer == "inputs shipped, output sent back"
    big = results[2].reason
    assert "over the 1.0 MB one job may ship through Ray's object store" in big and "big.wav" in big, big
    assert "\n" not in big and 3 not in {e.job.line for e in started}  # refused by the caller, never started
    bad = results[3].reason
    assert "not an image" in bad and str(a / "s1.wav") in bad and "facecast-ray-jobs" not in bad, bad
    assert not a.exists()  # nobody wrote at the jobs' own paths
    assert not (b / "big.mp4").exists() and not (b / "bad.mp4").exists() and not list(b.glob(".*partial*"))
    assert started and not _job_folders({e.pid for e in started})


def test_a_killed_workers_job_is_started_again_and_completes(cluster, local_outputs, tmp_path):
    """--ray-media auto, to workers that cannot see the caller's files: each worker says so and is
    sent the inputs, its output comes back. The worker running job 1 is killed mid-job: Ray
    restarts it, the job runs again from the shipped inputs and completes with the local
    runner's bytes; the killed worker's job folder is removed by its successor."""
    from facecast.batch.ray_runner import run_ray

    jobs, a, b, where = _moved_away(local_outputs, tmp_path, say_job("a.mp4"), say_job("b.mp4", audio="s2.wav", seed=5))
    killed, started = [], []

    def on_event(event):
        if isinstance(event, JobStarted):
            started.append(event)
            if event.job.line == 1 and not killed:
                os.kill(event.pid, signal.SIGKILL)  # the worker process running job 1, mid-job
                killed.append(event.pid)

    results = run_ray(jobs, BatchOptions(ray=cluster, retries=2), on_event, where)
    assert killed
    assert [r.status for r in results] == [DONE, DONE], [r.reason for r in results]
    assert results[0].attempts == 2 and results[1].attempts == 1
    assert {r.transfer for r in results} == {"inputs shipped, output sent back"}
    assert [e.pid for e in started if e.job.line == 1][0] == killed[0]
    assert [e.pid for e in started if e.job.line == 1][1] != killed[0]
    for name in ("a.mp4", "b.mp4"):
        assert (b / name).read_bytes() == (local_outputs / name).read_bytes(), name
    assert not list(b.glob(".*partial*")) and not list(b.glob(".facecast-probe-*")) and not a.exists()
    assert not _job_folders({e.pid for e in started})


def test_an_unreachable_cluster_refuses_the_batch(tmp_path):
    from facecast.batch.ray_runner import check_reachable

    with pytest.raises(InputError, match="cannot reach a Ray cluster there"):
        check_reachable("127.0.0.1:9")
    with pytest.raises(InputError, match="not a cluster address"):
        check_reachable("nohost")
    (tmp_path / "in.wav").write_bytes(b"")
    jobs_file(tmp_path, {"kind": "say", "portrait": "in.wav", "text": "Hi.", "output": "o.mp4"})
    r = run_cli("batch", "jobs.jsonl", "--ray", "127.0.0.1:9", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "--ray 127.0.0.1:9: cannot reach a Ray cluster there" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.mp4").exists()
