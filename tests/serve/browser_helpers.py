"""A real server and a real browser for the page tests: uvicorn on a free loopback port (in a
thread of the test process, temp data folder), Debian's Chromium driven by Playwright, with a
fake microphone playing real speech. Screenshots go to out/test-artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("FACECAST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def need_chromium() -> str:
    """The Chromium executable; skips when it (or Playwright) is missing, fails under CI=true."""
    missing = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        import importlib.util

        if importlib.util.find_spec("playwright") is None:
            missing = "Playwright for Python is not installed (pip install playwright)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need it under CI: {missing}")
        pytest.skip(missing)
    return CHROMIUM


def speech_wav(src: Path, dest: Path, seconds: float = 12.0) -> Path:
    """A 16-bit mono 48 kHz WAV of real speech (Chromium's fake microphone plays it in a loop)."""
    from facecast.audio import load_audio

    a = load_audio(src, sample_rate=48000, mono=True).samples[0][: int(seconds * 48000)]
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.clip(a, -1, 1) * 32767).astype("<i2").tobytes())
    return dest


class Server:
    """create_app(options) served by uvicorn in a thread; ``url``; ``stop()``."""

    def __init__(self, options) -> None:
        import uvicorn

        from facecast.serve.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = create_app(options)
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     ws_max_size=1 << 20))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(60)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


GRAB_JS = """async ({box, n, dt}) => {
  const v = document.getElementById('live-video');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const x = c.getContext('2d', {willReadFrequently: true});
  const out = [];
  for (let i = 0; i < n; i++) {
    x.drawImage(v, 0, 0);
    const d = x.getImageData(box[0], box[1], box[2], box[3]).data;
    const g = new Array(box[2] * box[3]);
    for (let k = 0; k < g.length; k++) g[k] = (d[4 * k] + d[4 * k + 1] + d[4 * k + 2]) / 3;
    out.push({t: v.currentTime, g});
    await new Promise(r => setTimeout(r, dt));
  }
  return out;
}"""


def grab(page, box: tuple[int, int, int, int], n: int = 30, dt_ms: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(times, gray crops [n, h, w]) of the live video's ``box`` (x, y, w, h), n frames dt apart."""
    rows = page.evaluate(GRAB_JS, {"box": list(box), "n": n, "dt": dt_ms})
    t = np.array([r["t"] for r in rows])
    g = np.array([r["g"] for r in rows], np.float32).reshape(n, box[3], box[2])
    return t, g


def motion(times: np.ndarray, crops: np.ndarray) -> float:
    """Mean absolute change (grey levels) between consecutive crops of different frames (a
    stalled player repeats its frame: those pairs say nothing about the mouth)."""
    d = [np.abs(b - a).mean() for a, b, ta, tb in zip(crops[:-1], crops[1:], times[:-1], times[1:]) if tb > ta]
    return float(np.mean(d)) if d else 0.0


def mouth_box(image_path: Path, size: int, margin: float = 0.35) -> tuple[int, int, int, int]:
    """(x, y, w, h) around the mouth of the portrait as the live engine frames it at ``size``."""
    from facecast.landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
    from facecast.options import SayOptions
    from facecast.sources import prepare_portrait

    p = prepare_portrait(str(image_path), SayOptions(size=size))
    pts = p.face.points[list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER), :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin + 0.02 * size
    x0, y0 = max(int(x0 - mx), 0), max(int(y0 - my), 0)
    x1, y1 = min(int(x1 + mx), size), min(int(y1 + my * 2), size)  # the jaw drops: more room below
    return x0, y0, x1 - x0, y1 - y0


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
