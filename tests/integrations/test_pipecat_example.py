"""examples/pipecat_avatar_bot.py end to end: the example's server in its own process, headless
Chromium (Debian's, through Playwright) as the user, with a fake microphone playing real speech.
The page connects over pipecat's SmallWebRTCTransport, the avatar's video plays at its size and
frame rate, the bot greets and echoes the speech, and the mouth moves. Screenshots are left in
the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import media
from pipecat_helpers import need_pipecat

ROOT = Path(__file__).resolve().parents[2]


def need(module: str):
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not installed under CI (scripts/setup.sh installs it)")
        pytest.skip(f"{module} is not installed")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is not installed under CI (scripts/setup.sh installs it)")
        pytest.skip("no chromium on this machine")
    return path


def mic_wav(path: Path) -> None:
    """3 s of silence, 4 s of JFK, 8 s of silence (Chromium loops the file)."""
    from facecast.audio import load_audio

    a = load_audio(media("audio/jfk_en.flac"), sample_rate=48000, mono=True).samples[0, :4 * 48000]
    x = np.concatenate([np.zeros(3 * 48000, np.float32), a, np.zeros(8 * 48000, np.float32)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.slow
def test_example_bot_in_a_browser(tmp_path):
    need_pipecat()
    need("aiortc")
    need("playwright")
    need("fastapi")
    browser_path = chromium()
    from playwright.sync_api import sync_playwright

    face = media("portrait/sam_512.jpg")
    mic_wav(tmp_path / "mic.wav")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, str(ROOT / "examples" / "pipecat_avatar_bot.py"), "--face", str(face),
                               "--size", "128", "--fps", "30", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the example's server did not start in 120 s"
                time.sleep(0.5)
        rows, shots = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=[
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tmp_path / 'mic.wav'}",
                "--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.click("#go")
                page.wait_for_function("document.getElementById('v').videoWidth > 0", timeout=90_000)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 14:
                    rows.append((time.monotonic(), page.evaluate(
                        "() => { const v = document.getElementById('v');"
                        " return [v.videoWidth, v.videoHeight, v.getVideoPlaybackQuality().totalVideoFrames]; }")))
                    shot = tmp_path / f"shot{len(shots):02d}.png"
                    page.locator("#v").screenshot(path=str(shot))
                    shots.append(shot)
                    time.sleep(0.5)
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    text = (tmp_path / "server.log").read_text()
    # The avatar's video plays at its size and (about) its frame rate.
    assert all(r[1][:2] == [128, 128] for r in rows)
    (ta, a), (tb, b) = rows[0], rows[-1]
    rate = (b[2] - a[2]) / (tb - ta)
    assert rate > 15, f"the video played {rate:.1f} frames/s"
    # The bot heard the speech and said it back (the greeting may be cut short by it: barge-in).
    heard = text.find("User stopped speaking")
    assert "Generating TTS [Hello!" in text and heard > 0, text[-3000:]
    assert text.find("Bot started speaking", heard) > heard, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # The mouth moved: the screenshots differ around the mouth far more than anywhere idle would.
    from PIL import Image

    from facecast.integrations.avatar import AvatarOptions, prepare_face
    from pipecat_helpers import mouth_box

    x0, y0, x1, y1 = mouth_box(prepare_face(face, AvatarOptions(size=128)))
    crops = []
    for shot in shots:
        im = Image.open(shot).convert("RGB").resize((128, 128))
        crops.append(np.asarray(im, np.float32)[y0:y1, x0:x1])
    spread = max(np.abs(c - crops[0]).mean() for c in crops)
    assert spread > 8, f"the mouth region changed by at most {spread:.1f} grey levels"
