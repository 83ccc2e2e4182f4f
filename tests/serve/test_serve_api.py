"""The HTTP API end to end, in process (TestClient), with real jobs run by real worker processes."""

from __future__ import annotations

import json
import os
import time

from serve_helpers import HI, client, portrait, serve, stored_files, submit, wait_for

from facecast.media import probe_mp4

FIXTURES = (client, portrait)  # imported fixtures: pytest finds them by name


def read_events(client, job_id: str) -> list[tuple[str, dict]]:
    events, name = [], None
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def test_health_openapi_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/v1/jobs"]) == {"get", "post"}
    assert set(paths["/v1/jobs/{job_id}"]) == {"get", "delete"}
    for p in ("/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/result", "/healthz", "/metrics", "/v1/faces/{face_id}"):
        assert "get" in paths[p], p
    assert "post" in paths["/v1/faces"]
    body = paths["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["spec"]["contentSchema"] == {"$ref": "#/components/schemas/JobSpec"}
    assert set(body["properties"]) == {"spec", "face", "face_id", "audio"}
    schemas = doc["components"]["schemas"]
    refs = {v["$ref"].rsplit("/", 1)[1] for v in schemas["JobSpec"]["oneOf"]}
    assert refs == {"SaySpec", "DubSpec", "TwinTrainSpec"}
    for name in refs:
        assert schemas[name]["additionalProperties"] is False
        assert all("description" in f for k, f in schemas[name]["properties"].items() if k != "kind")
    assert "size" in schemas["SaySpec"]["properties"] and "JobOut" in schemas
    assert set(paths["/v1/jobs/{job_id}"]["get"]["responses"]) == {"200", "401", "404", "422"}
    assert {"206", "416"} <= set(paths["/v1/jobs/{job_id}/result"]["get"]["responses"])
    assert "HTTPValidationError" not in str(doc)  # every 422 is InvalidOut: detail + error
    bad = client.get("/v1/jobs", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"].startswith("query.limit")
    text = client.get("/metrics").text
    for name in ("facecast_jobs{state=\"queued\"}", "facecast_queue_depth", "facecast_job_seconds",
                 "facecast_live_sessions", "facecast_live_frames_late_total", "facecast_process_resident_bytes"):
        assert name in text, name


def test_say_job_events_result_range_and_delete(client, portrait, tmp_path):
    face = client.post("/v1/faces", files={"face": ("me.jpg", portrait)})
    assert face.status_code == 201 and face.json()["kind"] == "image", face.text
    face_id = face.json()["id"]
    assert [f["id"] for f in client.get("/v1/faces").json()["faces"]] == [face_id]

    r = submit(client, HI, data={"face_id": face_id})
    assert r.status_code == 201 and r.json()["status"] == "queued", r.text
    job_id = r.json()["id"]
    events = read_events(client, job_id)
    names = [n for n, _ in events]
    assert names[0] in ("queued", "running") and names[-1] == "done", names
    assert "stage" in names and all(d["id"] == job_id for _, d in events)
    order = {"queued": 0, "running": 1, "stage": 1, "progress": 1, "done": 2}
    assert [order[n] for n in names] == sorted(order[n] for n in names)
    assert events[-1][1]["result"] == f"/v1/jobs/{job_id}/result"
    assert all(0 <= d.get("progress", 0) <= 1 for _, d in events)

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "done" and job["progress"] == 1 and job["face_id"] == face_id and job["error"] is None
    assert job["spec"]["size"] == 128 and job["spec"]["fps"] == 25.0  # defaults filled in
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [job_id]
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["jobs"] == []

    full = client.get(f"/v1/jobs/{job_id}/result")
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    data = full.content
    (tmp_path / "out.mp4").write_bytes(data)
    info = probe_mp4(tmp_path / "out.mp4")
    assert (info["width"], info["height"]) == (128, 128) and info["num_frames"] > 5 and info["audio_codec"] == "aac"

    part = client.get(f"/v1/jobs/{job_id}/result", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.content == data[100:200]
    tail = client.get(f"/v1/jobs/{job_id}/result", headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == data[-16:]
    beyond = client.get(f"/v1/jobs/{job_id}/result", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert "error" in beyond.json()
    bad = client.get(f"/v1/jobs/{job_id}/result", headers={"Range": "bytes=abc"})
    assert bad.status_code == 400 and "error" in bad.json()

    # a finished job's events: just its final state
    assert [n for n, _ in read_events(client, job_id)] == ["done"]
    # DELETE of a finished job removes it and its files; the face it used stays
    gone = client.delete(f"/v1/jobs/{job_id}")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not (client.data_dir / "jobs" / job_id).exists()
    assert client.get(f"/v1/faces/{face_id}").status_code == 200
    assert client.delete(f"/v1/faces/{face_id}").json()["deleted"] is True
    assert stored_files(client.data_dir) == []


def test_idempotency_key(client, portrait):
    files = {"face": ("p.jpg", portrait)}
    first = submit(client, HI, files=files, headers={"Idempotency-Key": "order-17"})
    again = submit(client, HI, files=files, headers={"Idempotency-Key": "order-17"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = submit(client, {**HI, "text": "Bye."}, files=files, headers={"Idempotency-Key": "order-17"})
    assert other.status_code == 409 and "different request" in other.json()["error"]
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1
    assert len(os.listdir(client.data_dir / "jobs")) == 1 and os.listdir(client.data_dir / "tmp") == []
    bad = submit(client, HI, files=files, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400
    # without a key, the same request is a new job
    assert submit(client, HI, files=files).json()["id"] != first.json()["id"]


def test_cancel_running_and_queued_jobs(client, portrait):
    runner = client.app.state.facecast.runner
    long = {**HI, "text": "This sentence is long enough to keep the worker busy for a few seconds at least."}
    a = submit(client, long, files={"face": ("p.jpg", portrait)}).json()["id"]
    b = submit(client, long, files={"face": ("p.jpg", portrait)}).json()["id"]
    wait_for(client, a, states=("running",))
    assert client.get(f"/v1/jobs/{b}").json()["status"] == "queued"  # one job at a time by default
    pids = runner.worker_pids()
    cancelled = client.delete(f"/v1/jobs/{b}").json()
    assert cancelled == {"id": b, "status": "cancelled", "deleted": False}
    _wait_stage(client, a, "render")  # the worker is at work on it
    assert client.delete(f"/v1/jobs/{a}").json()["status"] == "cancelled"
    for pid in pids:  # the worker that ran it was killed
        assert not _alive(pid)
    job = client.get(f"/v1/jobs/{a}").json()
    assert job["status"] == "cancelled" and job["result"] is None
    left = sorted(os.listdir(client.data_dir / "jobs" / a))
    assert left == ["face.jpg", "job.json", "log.txt"], left  # no result, no partial file
    assert client.get(f"/v1/jobs/{a}/result").status_code == 409
    assert [n for n, _ in read_events_quick(client, a)] == ["cancelled"]
    # a cancelled job can then be deleted
    assert client.delete(f"/v1/jobs/{a}").json()["deleted"] is True


def _wait_stage(client, job_id: str, stage: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while client.get(f"/v1/jobs/{job_id}").json()["stage"] != stage:
        assert time.monotonic() < end, client.get(f"/v1/jobs/{job_id}").json()
        time.sleep(0.05)


def read_events_quick(client, job_id):
    return read_events(client, job_id)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_idle_workers_exit(tmp_path, portrait):
    with serve(tmp_path / "data", worker_idle_s=1) as client:
        runner = client.app.state.facecast.runner
        job = submit(client, HI, files={"face": ("p.jpg", portrait)}).json()["id"]
        assert wait_for(client, job)["status"] == "done"
        pids = runner.worker_pids()
        assert len(pids) == 1  # kept warm for the next job ...
        end = time.monotonic() + 15
        while runner.worker_pids():
            assert time.monotonic() < end
            time.sleep(0.2)
        # ... until it has been idle for worker_idle_s; the runner drops it from its list first and
        # then ends the process (JobRunner._retire_idle), which takes a moment
        while _alive(pids[0]):
            assert time.monotonic() < end, f"worker {pids[0]} still running after it left"
            time.sleep(0.1)
