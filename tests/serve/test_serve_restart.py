"""Nothing lost: a real `facecast serve` process killed with SIGKILL during a job, then started
again on the same data folder. The job is re-queued and completes, no partial output is ever
served, and the job workers die with the server (they are not left running)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import HI, portrait, video

from facecast.media import probe_mp4

FIXTURES = (portrait, video)  # imported fixtures: pytest finds them by name


class Server:
    """`facecast serve --port 0` in a subprocess; ``url`` once it answers."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        cmd = [sys.executable, "-c", "from facecast.cli import main; main()", "serve", "--port", "0",
               "--data-dir", str(data_dir), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env={**os.environ, "COLUMNS": "200"})
        line = self.proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, f"no address in {line!r}"
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        end = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end and self.proc.poll() is None, "the server did not start"
            time.sleep(0.1)

    def children(self) -> list[int]:
        return descendants(self.proc.pid)

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, cond, timeout: float = 300) -> dict:
        end = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if cond(job):
                return job
            assert time.monotonic() < end, job
            time.sleep(0.05)

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stderr.close()


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except OSError:
        return False


def wait_dead(pids: list[int], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < end, [p for p in pids if alive(p)]
        time.sleep(0.05)


def test_kill_9_during_a_job_then_restart(tmp_path, portrait):
    data = tmp_path / "data"
    server = Server(data)
    try:
        long = {**HI, "text": "The server is killed while it says this, and says it again after the restart."}
        r = server.http.post("/v1/jobs", data={"spec": __import__("json").dumps(long)},
                             files={"face": ("p.jpg", portrait)})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        server.wait(job_id, lambda j: j["stage"] == "render" and j["status"] == "running", timeout=120)
        workers = server.children()
        assert workers, "the job runs in a worker process"
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        wait_dead(workers)  # the job workers die with the server
    finally:
        server.close()
    job_dir = data / "jobs" / job_id
    assert not (job_dir / "result.mp4").exists()

    server = Server(data)
    try:
        job = server.job(job_id)
        assert job["status"] in ("queued", "running") and job["result"] is None, job
        assert server.http.get(f"/v1/jobs/{job_id}/result").status_code == 409  # nothing partial is served
        job = server.wait(job_id, lambda j: j["status"] in ("done", "failed", "cancelled"))
        assert job["status"] == "done" and job["attempts"] == 2, job
        data_bytes = server.http.get(f"/v1/jobs/{job_id}/result").content
        (tmp_path / "out.mp4").write_bytes(data_bytes)
        info = probe_mp4(tmp_path / "out.mp4")
        assert info["width"] == 128 and info["video_duration"] > 2.0
        assert sorted(p.name for p in job_dir.iterdir()) == ["face.jpg", "job.json", "log.txt", "result.mp4"]
        workers = server.children()
        server.proc.send_signal(signal.SIGTERM)  # a graceful stop ends the workers too
        assert server.proc.wait(30) == 0
        wait_dead(workers)
    finally:
        server.close()


@pytest.mark.slow
def test_twin_training_resumes_after_kill_9(tmp_path, video):
    data = tmp_path / "data"
    spec = {"kind": "twin_train", "tiny": True, "crop": 64, "steps": 2, "minutes": 1, "mouth_folds": 0}
    server = Server(data)
    try:
        r = server.http.post("/v1/jobs", data={"spec": __import__("json").dumps(spec)},
                             files={"face": ("talk.mp4", video)})
        job_id = r.json()["id"]
        work = data / "jobs" / job_id / "twin.work"
        server.wait(job_id, lambda j: j["stage"] not in ("queued", "starting", "track"), timeout=600)
        caches = list(work.glob("track-*.npz"))
        assert len(caches) == 1
        before = caches[0].stat().st_mtime_ns
        workers = server.children()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        wait_dead(workers)
    finally:
        server.close()
    assert caches[0].exists()  # the work folder survives in the job folder

    server = Server(data)
    try:
        changed, seen = False, 0
        while (job := server.job(job_id))["status"] in ("queued", "running"):
            try:
                changed |= caches[0].stat().st_mtime_ns != before
                seen += 1
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert seen > 0 and not changed  # the tracks came from the cache: the run resumed
        faces = server.http.get("/v1/faces").json()["faces"]
        assert [(f["kind"], f["job_id"]) for f in faces] == [("twin", job_id)]  # ready for say jobs
        twin = server.http.get(f"/v1/jobs/{job_id}/result")
        assert twin.status_code == 200 and twin.content[8:9] == b"{"  # a safetensors header
        assert not work.exists()  # the work folder goes once the twin is made
    finally:
        server.close()
