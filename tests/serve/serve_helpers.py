"""Shared parts of the server tests: a TestClient over a fresh data folder, tiny inputs, and
checks that a refused request left nothing behind."""

from __future__ import annotations

import io
import json
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import media

HI = {"kind": "say", "text": "Hi.", "size": 128}
"""The smallest say job: one short word at 128 x 128."""


@contextmanager
def serve(data_dir: Path, **options):
    """A TestClient of create_app(ServeOptions(data_dir=data_dir, **options)), started."""
    from fastapi.testclient import TestClient

    from facecast.serve import ServeOptions, create_app

    app = create_app(ServeOptions(data_dir=str(data_dir), **options))
    with TestClient(app) as client:
        client.data_dir = Path(data_dir)
        yield client


@pytest.fixture
def client(tmp_path):
    with serve(tmp_path / "data") as c:
        yield c


@pytest.fixture(scope="session")
def portrait() -> bytes:
    """A real portrait (JPEG bytes), small enough to be quick."""
    return media("portrait/sam_512.jpg").read_bytes()


@pytest.fixture(scope="session")
def video() -> bytes:
    """A real 5 s video of a person talking."""
    return media("video/may_en.mp4").read_bytes()


def png(width: int = 200, height: int = 200, seed: int = 0) -> bytes:
    """A picture without a face (smooth noise), as PNG bytes."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(buf, format="PNG")
    return buf.getvalue()


def wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A tone as 16-bit mono WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def submit(client, spec: dict | str, files: dict | None = None, data: dict | None = None, headers=None):
    body = {"spec": spec if isinstance(spec, str) else json.dumps(spec), **(data or {})}
    return client.post("/v1/jobs", data=body, files=files or None, headers=headers)


def wait_for(client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 180.0,
             headers=None) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {job}")


def stored_files(data_dir: Path) -> list[str]:
    """Every file under the data folder besides the database: what requests left behind."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                  if p.is_file() and not p.name.startswith("facecast.sqlite3") and p.name != "worker.log")


def assert_clean_refusal(resp, status: int, data_dir: Path, before: list[str] | None = None, field: str | None = None):
    """A refusal: the status, a JSON body with a one-line error (no traceback), and no new file
    under the data folder."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    assert isinstance(body.get("error"), str) and body["error"] and "\n" not in body["error"], body
    if field is not None:
        locs = [d["loc"] for d in body["detail"]]
        assert any(field == loc[-1] for loc in locs), (field, locs)
        assert field in body["error"]
    assert stored_files(data_dir) == (before or []), stored_files(data_dir)
    return body
