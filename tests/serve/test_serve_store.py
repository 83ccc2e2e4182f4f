"""The job store and the spec -> options mapping, without a server (fast)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from facecast.serve.jobs import JobRunner, clear_outputs
from facecast.serve.kinds import SpecError, build_options
from facecast.serve.options import ServeOptions
from facecast.serve.specs import SaySpec, TwinTrainSpec
from facecast.serve.store import Job, Store, new_id, valid_id


def job(owner="local", status="queued", key=None, attempts=0) -> Job:
    return Job(id=new_id("j"), owner=owner, kind="say", spec={"kind": "say"}, status=status, progress=0.0,
               stage=None, eta_s=None, error=None, created_at=time.time(), started_at=None, finished_at=None,
               attempts=attempts, idem_key=key, request_hash="h", result=None, face_id=None, inputs={})


def test_store_is_sqlite_in_wal_mode(tmp_path):
    Store(tmp_path)
    con = sqlite3.connect(tmp_path / "facecast.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_ids_are_made_and_checked_here(tmp_path):
    store = Store(tmp_path)
    j, f = new_id("j"), new_id("f")
    assert valid_id(j, "j") and valid_id(f, "f") and not valid_id(j, "f")
    for bad in ("../x", "j_..", j + "/..", j.upper(), "", "j_" + "g" * 20):
        assert not valid_id(bad, "j")
        assert store.get_job(bad) is None
        with pytest.raises(ValueError):
            store.job_dir(bad)
    assert store.job_dir(j) == tmp_path / "jobs" / j


def test_idempotency_keys_per_owner_and_requeue(tmp_path):
    store = Store(tmp_path)
    a, created = store.add_job(job(key="k1"))
    assert created
    b, created = store.add_job(job(key="k1"))
    assert not created and b.id == a.id
    c, created = store.add_job(job(owner="other", key="k1"))  # another token's key space
    assert created and c.id != a.id
    store.update_job(a.id, status="running")
    assert store.requeue_running() == [a.id]
    assert store.get_job(a.id).status == "queued" and store.count_active("local") == 1


def test_leftover_uploads_are_swept_at_start(tmp_path):
    Store(tmp_path)
    (tmp_path / "tmp" / "half-upload").mkdir()
    (tmp_path / "tmp" / "half-upload" / "face").write_bytes(b"x" * 100)
    Store(tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_job_the_server_lost_too_often_fails(tmp_path):
    store = Store(tmp_path)
    tired, _ = store.add_job(job(status="running", attempts=3))
    fresh, _ = store.add_job(job(status="running", attempts=1))
    runner = JobRunner(store, ServeOptions(data_dir=str(tmp_path), max_job_attempts=3))

    async def cycle():
        store.update_job(fresh.id, status="cancelled")  # keep the runner from starting a worker
        await runner.start()
        await runner.stop()

    store.update_job(fresh.id, status="running")
    asyncio.run(cycle())
    failed = store.get_job(tired.id)
    assert failed.status == "failed" and "3 times" in failed.error


def test_clear_outputs_keeps_inputs(tmp_path):
    for name in ("face.jpg", "job.json", "log.txt", "result.mp4", ".result.partial.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "twin.work").mkdir()
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.jpg", "job.json", "log.txt"]


def test_spec_fields_map_onto_the_options():
    say = build_options("say", SaySpec(kind="say", text="Hi.", size=256, crf=30, seed=7).model_dump(), "cpu")
    assert (say.size, say.encode.crf, say.motion.seed, say.render.device) == (256, 30, 7, "cpu")
    twin = build_options("twin_train", TwinTrainSpec(kind="twin_train", minutes=2, crop=64, tiny=True).model_dump(),
                         "cpu", job_dir=None)
    assert twin.render.seconds == 120 and twin.prep.crop_px == 64 and twin.render.config.size == 64
    with pytest.raises(SpecError) as e:
        build_options("say", SaySpec(kind="say", text="Hi.", expressiveness=4).model_dump(), "cpu")
    assert e.value.field == "expressiveness" and "0 ... 3" in str(e.value)
    with pytest.raises(SpecError) as e:
        build_options("twin_train", TwinTrainSpec(kind="twin_train", crop=100).model_dump(), "cpu")
    assert e.value.field == "crop"
