"""A Ray job's files without Ray (batch.transfer, ray_runner.run_planned): a script job run from
shipped copies of its files alone (the script, faces, recordings, background) in a job folder,
its outputs written back by the caller; job folders removed whatever happens; the fingerprint
rule "auto" decides by; the caller's marker files; the object-store limit. The same paths with
a real Ray cluster: test_batch_ray.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import media
from facecast.batch.events import DONE, output_complete
from facecast.batch.kinds import KINDS
from facecast.batch.local import run_batch
from facecast.batch.options import BatchOptions
from facecast.batch.ray_runner import NeedsInputs, Plan, run_planned
from facecast.batch.read import read_jobs
from facecast.batch.transfer import (JobFolder, OutputProbes, ShippedFile, TooBig, fingerprint, jobs_root, sees,
                                     sweep_dead, write_back)
from facecast.batch.warm import Worker
from test_batch_jobs import jobs_file, speech_clips


def _ours() -> list:
    root = jobs_root()
    return [d for d in root.iterdir() if d.name.startswith(f"{os.getpid()}-")] if root.is_dir() else []


def _shipped(files, where=lambda p: p):
    """ShippedFiles whose 'object refs' are the arrays themselves (``get`` is the identity)."""
    out = []
    for _, p in files:
        data = where(p).read_bytes()
        pieces = (np.frombuffer(data[:1000], np.uint8), np.frombuffer(data[1000:], np.uint8))
        out.append(ShippedFile(p, len(data), pieces))
    return tuple(out)


def test_a_script_job_runs_from_shipped_copies_of_all_its_files(tmp_path):
    """Every file the script reads (faces, a recorded take, a background image) travels with it:
    after the caller's folder is renamed, the job still renders, in a job folder, the same
    bytes as the local runner; the MP4 comes back after its subtitles and the folder is gone."""
    from PIL import Image

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "faces").mkdir()
    (a / "faces" / "sam.jpg").write_bytes(media("portrait/sam_512.jpg").read_bytes())
    speech_clips(a, seconds=1.0)
    Image.new("RGB", (32, 16), (200, 30, 30)).save(a / "bg.png")
    (a / "show.md").write_text("---\nsize: 128x64\nlayout: split\nbackground: bg.png\nspeakers:\n"
                               "  ANA: {face: faces/sam.jpg}\n  BEN: {face: faces/sam.jpg}\n---\n"
                               "ANA: [audio: s1.wav | Hello there]\nBEN: [audio: s2.wav | Fine]\n")
    line = {"kind": "script", "script": "show.md", "subtitles": "both", "crf": 30, "preset": "ultrafast"}
    ref, job = read_jobs(jobs_file(a, {**line, "output": "ref.mp4"}, {**line, "output": "show.mp4"}))
    assert [r.status for r in run_batch([ref], BatchOptions())] == [DONE]
    request, files = KINDS["script"].files(job.request)
    assert sorted(label for label, _ in files) == ["background", "face of ANA", "recording", "recording", "script"]
    shipped = _shipped(files)
    a.rename(b)
    where = lambda p: b / p.relative_to(a)  # noqa: E731
    plan = Plan("shipped", "back", shipped=shipped, request=request, limit=10**9)
    started = []
    result, back = run_planned(lambda x: x, Worker("test"), job, plan, "cpu", lambda d, t: None,
                               lambda: started.append(1))
    assert result.status == DONE, result.reason
    assert result.job is job and result.transfer == "inputs shipped, output sent back" and started == [1]
    assert [p.name for p, _ in back] == ["show.srt", "show.vtt", "show.mp4"]
    write_back(back, where)
    assert (b / "show.mp4").read_bytes() == (b / "ref.mp4").read_bytes()
    assert (b / "show.srt").read_text() == (b / "ref.srt").read_text()
    assert not a.exists() and not _ours()


def test_a_failing_job_reports_the_callers_paths_and_leaves_no_folder(tmp_path):
    speech_clips(tmp_path)
    job, = read_jobs(jobs_file(tmp_path, {"kind": "say", "portrait": "s1.wav", "audio": "s2.wav", "output": "x.mp4"}))
    _, files = KINDS["say"].files(job.request)
    plan = Plan("shipped", "back", shipped=_shipped(files), limit=10**9)
    result, back = run_planned(lambda x: x, Worker("test"), job, plan, "cpu", lambda d, t: None, lambda: None)
    assert result.status == "failed" and back == []
    assert str(tmp_path / "s1.wav") in result.reason and "facecast-ray-jobs" not in result.reason, result.reason
    assert not _ours() and not (tmp_path / "x.mp4").exists()


def test_auto_asks_for_the_files_a_worker_does_not_see(tmp_path):
    """A "check" plan whose fingerprints do not match answers NeedsInputs without starting."""
    speech_clips(tmp_path)
    (tmp_path / "sam.jpg").write_bytes(media("portrait/sam_512.jpg").read_bytes())
    job, = read_jobs(jobs_file(tmp_path, {"kind": "say", "portrait": "sam.jpg", "audio": "s1.wav", "output": "x.mp4"}))
    fps = tuple(fingerprint(p) for _, p in KINDS["say"].files(job.request)[1])
    (tmp_path / "s1.wav").write_bytes((tmp_path / "s2.wav").read_bytes())
    started = []
    answer, back = run_planned(lambda x: x, Worker("test"), job, Plan("check", "probe", fingerprints=fps, probe="nope"),
                               "cpu", lambda d, t: None, lambda: started.append(1))
    assert answer == NeedsInputs(output_seen=False) and back == [] and not started


def test_fingerprints_tell_the_same_file(tmp_path):
    p = tmp_path / "f.bin"
    data = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    p.write_bytes(data)
    fp = fingerprint(p)
    assert sees([fp])
    p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the last byte changed
    assert not sees([fp])
    p.write_bytes(data + b"x")
    assert not sees([fp])
    p.unlink()
    assert not sees([fp])


def test_job_folders_are_removed_on_failure_and_dead_workers_folders_swept(tmp_path):
    with pytest.raises(RuntimeError):
        with JobFolder(tmp_path) as folder:
            (folder.path / "x").write_bytes(b"1")
            raise RuntimeError("the job failed")
    assert not folder.path.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"{dead}-abc").mkdir()
    (tmp_path / f"{os.getpid()}-abc").mkdir()
    sweep_dead(tmp_path)
    assert sorted(d.name for d in tmp_path.iterdir()) == [f"{os.getpid()}-abc"]


def test_outputs_over_the_limit_and_probe_files(tmp_path):
    with JobFolder(tmp_path / "jobs") as folder:
        out = folder.output(tmp_path / "o.mp4")
        out.write_bytes(b"x" * 2000)
        with pytest.raises(TooBig, match="its output is 0.0 MB, over the 0.0 MB"):
            folder.collect([tmp_path / "o.mp4"], 1000)
        assert [p for p, _ in folder.collect([tmp_path / "o.mp4"], 2000)] == [tmp_path / "o.mp4"]
    probes = OutputProbes([tmp_path, tmp_path])
    name = probes.names[tmp_path]
    assert (tmp_path / name).is_file() and len(list(tmp_path.glob(".facecast-probe-*"))) == 1
    probes.close()
    assert not list(tmp_path.glob(".facecast-probe-*"))
    with pytest.raises(FileNotFoundError):  # a folder that is gone: nothing half-written left
        write_back([(tmp_path / "gone" / "o.mp4", np.zeros(3, np.uint8))])
    assert not output_complete(tmp_path / "o.mp4")


def test_a_video_face_ships_with_its_track_file(tmp_path):
    """A script whose speaker is a video face: its track file (named in the front matter, or
    STEM.track.npz beside the video) travels with the job and is read from the job's folder."""
    import shutil

    from facecast.batch.kinds import moved_script, script_files
    from facecast.show import parse_script

    shutil.copy(media("video/may_en.mp4"), tmp_path / "may.mp4")
    shutil.copy(media("video/may_en.mp4"), tmp_path / "bob.mp4")
    (tmp_path / "may.track.npz").write_bytes(b"beside")
    (tmp_path / "bob_named.npz").write_bytes(b"named")
    (tmp_path / "show.md").write_text("---\nspeakers:\n  MAY: {face: may.mp4}\n"
                                      "  BOB: {face: bob.mp4, track: bob_named.npz}\n---\nMAY: Hello.\nBOB: Hi.\n")
    script = parse_script(tmp_path / "show.md")
    files = dict((label, p) for label, p in script_files(script))
    assert files["face track of MAY"] == tmp_path / "may.track.npz"
    assert files["face track of BOB"] == tmp_path / "bob_named.npz"
    there = tmp_path / "job"
    moved = moved_script(script, lambda p: there / p.name)
    assert moved.speakers["BOB"].track == there / "bob_named.npz"
    assert moved.speakers["MAY"].face == there / "may.mp4"  # its track is found beside it there
