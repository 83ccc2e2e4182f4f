"""`facecast batch` on this machine: job specs and their errors (with line numbers), warm workers
whose outputs equal cold `say` / `dub` byte for byte, failures kept to their job, resuming,
and the script kind's seam. The Ray runner is in test_batch_ray.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import media, short_clip
from facecast.audio import write_wav
from facecast.batch.events import DONE, EXIT_FAILED, FAILED, SKIPPED, exit_code, output_complete
from facecast.batch.local import run_batch
from facecast.batch.options import BatchOptions
from facecast.batch.read import read_jobs
from facecast.batch.spec import SpecError
from facecast.errors import OptionError
from facecast.media import probe_mp4

CLI = [sys.executable, "-c", "import sys; from facecast.cli import main; sys.argv[0] = 'facecast'; main()"]


def speech_clips(folder: Path, seconds: float = 1.5) -> tuple[Path, Path]:
    """Two short clips of real speech (hdtf_radio31_en.wav, 16 kHz), different words."""
    from facecast.audio import load_audio

    a = load_audio(media("audio/hdtf_radio31_en.wav")).samples[0]
    n = int(seconds * 16000)
    return write_wav(folder / "s1.wav", a[:n]), write_wav(folder / "s2.wav", a[3 * 16000:3 * 16000 + n])


def jobs_file(folder: Path, *jobs, name: str = "jobs.jsonl") -> Path:
    path = folder / name
    path.write_text("\n".join(j if isinstance(j, str) else json.dumps(j) for j in jobs) + "\n")
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.run(CLI + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def folder(tmp_path):
    """A jobs folder holding a portrait (sam_512.jpg) and two 1.5 s speech clips."""
    (tmp_path / "sam.jpg").write_bytes(media("portrait/sam_512.jpg").read_bytes())
    speech_clips(tmp_path)
    (tmp_path / "in.mp4").write_bytes(b"")  # an input named like an output
    return tmp_path


def say_job(output: str, audio: str = "s1.wav", **kw) -> dict:
    return {"kind": "say", "portrait": "sam.jpg", "audio": audio, "output": output, "size": 128,
            "preset": "ultrafast", **kw}


# -- the spec: every bad line named, nothing run ----------------------------------------------


def refused(folder: Path, *lines) -> str:
    with pytest.raises(SpecError) as info:
        read_jobs(jobs_file(folder, *lines))
    return str(info.value)


@pytest.mark.parametrize("line, expect", [
    ("{not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: a JSON list, not an object"),
    ({"kind": "sing", "output": "x.mp4"}, "line 2: unknown kind \"sing\": must be one of say, dub, script"),
    ({"output": "x.mp4"}, "line 2: no \"kind\""),
    (say_job("x.mp4", colour="red"), "line 2: unknown field \"colour\" for a say job"),
    (say_job("x.mp4", words="yes"), "line 2: field \"words\" = \"yes\": must be true or false"),
    (say_job("x.mp4", size="big"), "line 2: field \"size\" = \"big\": must be a number or \"portrait\""),
    (say_job("x.mp4", size=130.5), "line 2: field \"size\" = 130.5: must be an even whole number in 64 ... 4096"),
    (say_job("x.mp4", crf=99), "line 2: field \"crf\" = 99: must be a number in 0 ... 51"),
    (say_job("x.mp4", head_motion=float("nan")), "line 2: field \"head_motion\" = NaN: must be a number in 0 ... 3"),
    (say_job("x.mp4", device="gpu"), "line 2: field \"device\" = \"gpu\": must be one of cpu, cuda, cuda:N, auto"),
    (say_job("x.mp4", preset="bogus"), "line 2: field \"preset\" = \"bogus\": must be one of ultrafast"),
    (say_job("x.mp4", audio="missing.wav"), "line 2: field \"audio\": audio file"),
    (say_job("x.mp4", text="Hi."), "line 2: give exactly one of \"text\" / \"audio\" (got text and audio)"),
    (say_job("nofolder/x.mp4"), "line 2: field \"output\":"),
    (say_job("x.avi"), "unsupported output type ('.avi')"),
    (say_job("in.mp4", audio="in.mp4"), "this is the audio input"),
    ({"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "x.mp4", "mouth": "lips"},
     "line 2: field \"mouth\" = \"lips\": must be one of auto, footage, mesh"),
    ({"kind": "dub", "text": "Hi.", "output": "x.mp4"}, "line 2: no \"video\""),
    ({"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "x.mp4", "mouth_model": "twin"},
     "line 2: field \"mouth_model\" = \"twin\": must be one of auto, learned, phones"),
    ({"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "x.mp4", "draw_workers": 65},
     "line 2: field \"draw_workers\" = 65: must be a whole number in 0 ... 64"),
    ({"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "x.mp4", "processes": -1},
     "line 2: field \"processes\" = -1: must be a whole number in 0 ... 64"),
    ({"kind": "script", "script": "s1.wav", "output": "x.mp4", "video_loop_s": 0.5},
     "line 2: field \"video_loop_s\" = 0.5: must be a number in 1 ... 600"),
    ({"kind": "script", "script": "none.md", "output": "x.mp4"}, "line 2: field \"script\": script"),
    ({"kind": "say", "portrait": "sam.jpg", "text": "", "output": "x.mp4"}, "line 2: field \"text\":"),
])
def test_a_bad_line_refuses_the_batch_naming_line_and_field(folder, line, expect):
    msg = refused(folder, say_job("ok.mp4"), line)
    assert expect in msg, msg
    assert "no job was run" in msg


def test_every_bad_line_is_listed_and_comments_are_skipped(folder):
    msg = refused(folder, "# a comment", "", say_job("a.mp4", crf=-1), "{", say_job("b.mp4"), say_job("c.mp4", fps=0))
    assert "(3 problems" in msg
    assert "line 3: field \"crf\"" in msg and "line 4: not valid JSON" in msg and "line 6: field \"fps\"" in msg


def test_output_collisions_between_jobs_are_refused(folder):
    os.symlink(folder / "a.mp4", folder / "link.mp4")
    msg = refused(folder, say_job("a.mp4"), say_job("./a.mp4", audio="s2.wav"))
    assert "line 2: output" in msg and "is also the output of" in msg and "line 1" in msg
    msg = refused(folder, say_job("a.mp4"), say_job("link.mp4", audio="s2.wav"))
    assert "line 2: output" in msg and "is also the output of" in msg
    (folder / "b.mp4").write_bytes(b"")
    msg = refused(folder, say_job("b.mp4"), say_job("c.mp4", audio="b.mp4"))
    assert "line 1: output" in msg and "is the audio input of" in msg and "line 2" in msg


def test_empty_file_and_unreadable_inputs(folder):
    assert "no jobs" in refused(folder, "# nothing here")
    with pytest.raises(Exception, match="no such file"):
        read_jobs(folder / "none.jsonl")
    (folder / "bin.jsonl").write_bytes(b'{"kind": "say"}\n\xff\xfe\n')
    with pytest.raises(Exception, match="bin.jsonl line 2: not UTF-8"):
        read_jobs(folder / "bin.jsonl")


def test_batch_options_have_ranges():
    for bad in (dict(jobs=0), dict(jobs=65), dict(jobs=1.5), dict(ray_cpus=0), dict(retries=-1), dict(device="gpu"),
                dict(ray_media="nfs"), dict(ray_media_limit_mb=0), dict(ray_media_limit_mb=70000),
                dict(ray_media_limit_mb=float("nan"))):
        with pytest.raises(OptionError):
            BatchOptions(**bad)


def test_cli_refuses_a_bad_batch_with_exit_2_and_writes_nothing(folder):
    jobs_file(folder, say_job("a.mp4"), say_job("b.mp4", crf=99))
    r = run_cli("batch", "jobs.jsonl", cwd=folder)
    assert r.returncode == 2, r.stderr
    assert "jobs.jsonl line 2: field \"crf\" = 99" in r.stderr and "Traceback" not in r.stderr
    assert not (folder / "a.mp4").exists()
    r = run_cli("batch", "jobs.jsonl", "--jobs", "0", cwd=folder)
    assert r.returncode == 2 and "--jobs 0: must be a whole number in 1 ... 64" in r.stderr
    r = run_cli("batch", "jobs.jsonl", "--device", "gpu", "--ray-cpus", "2", cwd=folder)
    assert r.returncode == 2 and "--device gpu: must be one of cpu, cuda, cuda:N, auto" in r.stderr, r.stderr
    r = run_cli("batch", "jobs.jsonl", "--output-dir", ".", cwd=folder)
    assert r.returncode == 2 and "--output-dir goes with a folder of scripts" in r.stderr, r.stderr
    r = run_cli("batch", "jobs.jsonl", "--ray-media", "nfs", cwd=folder)
    assert r.returncode == 2 and "--ray-media nfs: must be one of auto, shared-storage, object-store" in r.stderr, r.stderr
    r = run_cli("batch", "jobs.jsonl", "--ray-media-limit", "0", cwd=folder)
    assert r.returncode == 2 and "--ray-media-limit 0: must be a number in 1 ... 65536 MB" in r.stderr, r.stderr
    r = run_cli("batch", "jobs.jsonl", "--ray-media-limit", "lots", cwd=folder)
    assert r.returncode == 2 and "(give a number)" in r.stderr and "Traceback" not in r.stderr, r.stderr


# -- running: warm equals cold, failures stay in their job, resume ---------------------------


def test_warm_jobs_equal_cold_commands_byte_for_byte(folder):
    """A warm worker (portrait, aligner, VAD, renderer kept from job to job) writes the very
    file a cold `say` / `dub` writes; a job run after others equals the same job run first."""
    from facecast.dubbing.options import DubOptions
    from facecast.dubbing.pipeline import dub
    from facecast.options import EncodeOptions, SayOptions
    from facecast.pipeline import say

    video = media("video/may_en.mp4")
    dub_job = {"kind": "dub", "video": str(video), "audio": "s2.wav", "output": "d.mp4", "calibrate": False,
               "workers": 0, "preset": "ultrafast"}
    jobs = read_jobs(jobs_file(folder, say_job("a.mp4"), say_job("b.mp4", audio="s2.wav", seed=3), dub_job,
                               say_job("a2.mp4")))
    events = []
    results = run_batch(jobs, BatchOptions(jobs=1), events.append)
    assert [r.status for r in results] == [DONE] * 4, [r.reason for r in results]
    assert exit_code(results) == 0
    say(folder / "sam.jpg", folder / "cold_a.mp4", audio=folder / "s1.wav",
        options=SayOptions(size=128, encode=EncodeOptions(preset="ultrafast")))
    dub(video, folder / "cold_d.mp4", audio=folder / "s2.wav",
        options=DubOptions(calibrate=False, workers=0, encode=EncodeOptions(crf=18, preset="ultrafast")))
    cold_a = (folder / "cold_a.mp4").read_bytes()
    assert (folder / "a.mp4").read_bytes() == cold_a
    assert (folder / "a2.mp4").read_bytes() == cold_a  # after the other jobs, on the same warm models
    assert (folder / "d.mp4").read_bytes() == (folder / "cold_d.mp4").read_bytes()
    assert (folder / "b.mp4").read_bytes() != cold_a
    kinds = {type(e).__name__ for e in events}
    assert kinds == {"JobStarted", "JobProgress", "JobFinished"}


def test_failures_stay_in_their_job_and_rerun_resumes(folder):
    (folder / "broken.mp4").write_bytes(b"not an mp4 at all")
    lines = [say_job("a.mp4"), {"kind": "say", "portrait": "s1.wav", "text": "Hello.", "output": "bad.mp4"},
             say_job("broken.mp4", audio="s2.wav"), {"kind": "script", "script": "jobs.jsonl", "output": "show.mp4"}]
    path = jobs_file(folder, *lines)
    r = run_cli("batch", str(path), "--jobs", "2", cwd=folder)
    assert r.returncode == EXIT_FAILED, r.stderr
    assert "2 done, 2 failed, 0 skipped" in r.stderr
    assert "not an image" in r.stderr  # the portrait that is a sound file: its job's one-line reason
    assert output_complete(folder / "a.mp4") and output_complete(folder / "broken.mp4")  # re-rendered
    assert not (folder / "bad.mp4").exists() and not list(folder.glob(".*partial*"))
    before = (folder / "a.mp4").stat().st_mtime_ns
    results = run_batch(read_jobs(path), BatchOptions())
    assert [r.status for r in results] == [SKIPPED, FAILED, SKIPPED, FAILED]
    assert (folder / "a.mp4").stat().st_mtime_ns == before
    results = run_batch(read_jobs(path)[:1], BatchOptions(force=True))
    assert results[0].status == DONE and (folder / "a.mp4").stat().st_mtime_ns != before


def test_concurrent_jobs_write_what_one_at_a_time_writes(folder):
    lines = [say_job("a.mp4"), say_job("b.mp4", audio="s2.wav", seed=7)]
    one = run_batch(read_jobs(jobs_file(folder, *lines)), BatchOptions(jobs=1))
    first = {r.job.output.name: r.job.output.read_bytes() for r in one}
    two = run_batch(read_jobs(jobs_file(folder, *lines)), BatchOptions(jobs=2, force=True))
    assert [r.status for r in two] == [DONE] * 2
    assert {r.job.output.name: r.job.output.read_bytes() for r in two} == first
    assert len({r.worker for r in two}) == 2


def test_a_folder_of_scripts_renders_each_script_beside_it(tmp_path):
    """A folder of show scripts is a batch of `script` jobs (OUTPUT = SCRIPT.mp4, or in
    --output-dir), rendered by show.render_script; other files are ignored."""
    (tmp_path / "sam.jpg").write_bytes(media("portrait/sam_512.jpg").read_bytes())
    head = "---\nsize: 128x64\nlayout: split\nspeakers:\n  ANA: {face: sam.jpg}\n  BEN: {face: sam.jpg}\n---\n"
    (tmp_path / "one.md").write_text(head + "ANA: Hi.\n")
    (tmp_path / "notes.txt").write_text("not a script")
    jobs = read_jobs(tmp_path)
    assert [(j.kind, j.output.name) for j in jobs] == [("script", "one.mp4")]
    results = run_batch(jobs, BatchOptions())
    assert [r.status for r in results] == [DONE], results[0].reason
    info = probe_mp4(tmp_path / "one.mp4")
    assert (info["width"], info["height"]) == (128, 64) and info["num_frames"] > 0
    out = tmp_path / "out"
    out.mkdir()
    assert read_jobs(tmp_path, out)[0].output == out / "one.mp4"
    with pytest.raises(SpecError, match="no scripts in this folder"):
        read_jobs(out)


def test_script_job_options_are_checked_with_the_batch(tmp_path):
    """A script job's options are ScriptOptions' fields: out of range or unknown, the batch is
    refused with the line and the field, before anything renders."""
    (tmp_path / "show.md").write_text("ANA: Hi.\n")
    bad = jobs_file(tmp_path, {"kind": "script", "script": "show.md", "output": "x.mp4", "layout": "row"},
                    {"kind": "script", "script": "show.md", "output": "y.mp4", "colour": 1},
                    {"kind": "script", "script": "show.md", "output": "z.mp4", "width": 100, "height": 63},
                    name="bad.jsonl")
    with pytest.raises(SpecError) as info:
        read_jobs(bad)
    text = str(info.value)
    assert "bad.jsonl line 1: field \"layout\" = \"row\"" in text, text
    assert "bad.jsonl line 2:" in text and "colour" in text, text
    assert "bad.jsonl line 3: field \"height\" = 63" in text, text
    assert not list(tmp_path.glob("*.mp4"))


def test_sigterm_stops_the_batch_keeping_finished_outputs_and_a_rerun_resumes(folder):
    """SIGTERM mid-batch: exit 143, the running job's partial file removed, the finished job's
    output kept; running the same command again skips it and renders the rest."""
    import signal
    import time

    from facecast.audio import load_audio

    a = load_audio(media("audio/hdtf_radio31_en.wav")).samples[0]
    write_wav(folder / "long.wav", a)  # 8 s: still rendering when the signal comes
    jobs_file(folder, say_job("a.mp4"), say_job("b.mp4", audio="long.wav"), say_job("c.mp4", audio="s2.wav"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.Popen(CLI + ["batch", "jobs.jsonl"], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(folder.glob(".b.partial.mp4")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert list(folder.glob(".b.partial.mp4")), "job 2 never started writing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert output_complete(folder / "a.mp4")
    assert not (folder / "b.mp4").exists() and not (folder / "c.mp4").exists()
    assert not list(folder.glob(".*partial*"))
    (folder / "long.wav").write_bytes((folder / "s1.wav").read_bytes())  # a short take: the re-run is quick
    r = run_cli("batch", "jobs.jsonl", cwd=folder)
    assert r.returncode == 0 and "2 done, 0 failed, 1 skipped" in r.stderr, r.stderr


# -- dub jobs with a precomputed face track ---------------------------------------------------


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """may_en.mp4's first 1.2 s at 128x128, its face track (dub's own tracker), and a track of
    the same shape made for another video."""
    import dataclasses

    from facecast.dubbing.trackfile import save_track, track_video_file

    tmp = tmp_path_factory.mktemp("dubtrack")
    video = short_clip(tmp / "may.mp4", 128, 30)
    track = track_video_file(video)
    save_track(track, tmp / "may.track.npz")
    save_track(dataclasses.replace(track, sha256="0" * 64), tmp / "other.track.npz")
    return tmp


def dub_job(folder: Path, output: str, **kw) -> dict:
    return {"kind": "dub", "video": str(folder / "may.mp4"), "audio": "s1.wav", "output": output,
            "calibrate": False, "workers": 0, "preset": "ultrafast", "words": False, **kw}


@pytest.mark.parametrize("track, expect", [
    ("none.npz", "line 2: field \"track\": track file"),
    ("s1.wav", "line 2: field \"track\": "),
])
def test_a_bad_track_field_refuses_the_batch(folder, tracked, track, expect):
    msg = refused(folder, say_job("ok.mp4"), dub_job(tracked, "d.mp4", track=track))
    assert expect in msg and ("not a facecast track file" in msg or "does not exist" in msg), msg


def test_a_track_following_another_face_refuses_the_batch(folder, tracked):
    msg = refused(folder, dub_job(tracked, "d.mp4", track=str(tracked / "may.track.npz"), face=1))
    assert "line 1: field \"track\": " in msg and "this job asks for face 1" in msg, msg


def test_dub_jobs_use_their_track_and_one_of_another_video_fails_alone(folder, tracked):
    """A dub job with its video's track completes (the track replaces dub's own tracking: the
    same frames, tests/test_dub_track.py); one given another video's track fails with that
    reason, found when it runs (checking it hashes the whole video), the others complete."""
    jobs = read_jobs(jobs_file(folder, dub_job(tracked, "d.mp4", track=str(tracked / "may.track.npz")),
                               dub_job(tracked, "e.mp4", track=str(tracked / "other.track.npz"))))
    assert jobs[0].request.track == tracked / "may.track.npz"
    assert ("track", tracked / "may.track.npz") in jobs[0].inputs
    results = run_batch(jobs, BatchOptions())
    assert [r.status for r in results] == [DONE, FAILED], [r.reason for r in results]
    assert "other.track.npz: was made for another video" in results[1].reason, results[1].reason
    assert output_complete(folder / "d.mp4") and not (folder / "e.mp4").exists()


def test_dub_and_script_fields_reach_their_options(folder):
    """mouth_model / draw_workers / processes (dub) and video_loop_s (script) land in the typed options;
    a batch dub draws on one process unless its line asks for span workers."""
    (folder / "show.md").write_text("---\nspeakers:\n  SAM: {face: sam.jpg}\n---\nSAM: Hello.\n")
    dub_line = {"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "d.mp4", "mouth_model": "phones",
                "draw_workers": 3}
    script_line = {"kind": "script", "script": "show.md", "output": "s.mp4", "video_loop_s": 12.5}
    spans_line = {"kind": "dub", "video": "s1.wav", "text": "Hi.", "output": "e.mp4", "processes": 6}
    dub_job, script_job, spans_job = read_jobs(jobs_file(folder, dub_line, script_line, spans_line))
    assert dub_job.request.options.mouth_model == "phones" and dub_job.request.options.draw_workers == 3
    assert dub_job.request.options.processes == 1 and spans_job.request.options.processes == 6
    assert script_job.request.options.video_loop_s == 12.5
