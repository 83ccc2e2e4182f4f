"""Bad and awkward inputs to `say` (issue #18): refused with one clear line before any work,
or accepted with a warning and a valid video; nothing left behind."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import media
from facecast.errors import InputError
from facecast.media import probe_mp4
from facecast.options import SayOptions
from facecast.pipeline import say_chunks
from facecast.types import VideoFrames

CLI = [str(Path(sys.executable).with_name("facecast"))]


def run_cli(*args, env=None):
    return subprocess.run(CLI + list(args), capture_output=True, timeout=300, env=env)


def assert_refused(res, out: Path, *words):
    """Exit 2, one `error:` line with ``words``, no traceback, no output or partial file."""
    stderr = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    flat = " ".join(stderr.split())
    for w in words:
        assert w in flat, (w, stderr)
    assert not out.exists()
    assert not list(out.parent.glob(".*partial*"))


def tone_wav(path: Path, seconds: float, level: float = 0.3, rate: int = 16000) -> Path:
    import wave

    t = np.arange(int(round(seconds * rate))) / rate
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((level * np.sin(2 * np.pi * 200 * t) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def sam():
    return str(media("portrait/sam_512.jpg"))


# ---- 1. tiny audio ----

@pytest.mark.parametrize("seconds, level", [(0.02, 0.3), (0.05, 0.3), (0.05, 0.0), (0.01, 0.0)])
def test_cli_tiny_audio_is_refused_clearly(tmp_path, sam, seconds, level):
    """0.05 s or less crashed in motion.py (shapes (3,) vs (2,)) or head() with a traceback."""
    clip = tone_wav(tmp_path / "tiny.wav", seconds, level)
    out = tmp_path / "o.mp4"
    assert_refused(run_cli("say", sam, "--audio", str(clip), "-o", str(out)), out, "tiny.wav", "too short")


def test_a_last_segment_of_two_frames_animates(tmp_path):
    """The crash of tiny clips hit ordinary ones too: 2.00 s of speech ending in 0.1 s of silence
    is cut at 1.92 s (the quietest point of the first 2 s segment), leaving a last segment of 2
    frames, and motion.py raised "shapes (3,) (2,)"."""
    import wave

    from facecast.audio import load_audio
    from facecast.segments import audio_segments

    x = load_audio(media("audio/jfk_en.flac")).samples[0][int(0.3 * 16000):int(2.3 * 16000)].copy()
    x[int(1.9 * 16000):] = 0
    clip = tmp_path / "edge.wav"
    with wave.open(str(clip), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((x * 32767).astype("<i2").tobytes())
    assert [s.num_frames for s in audio_segments(clip, 25.0, 12.0, 2.0)] == [48, 2]
    chunks = list(say_chunks(media("portrait/sam_512.jpg"), audio=clip, options=SayOptions(size=64)))
    assert [c.video.num_frames for c in chunks] == [48, 2]


# ---- 2, 7. text the voice cannot read ----

def test_cli_text_that_is_not_utf8_is_refused(tmp_path, sam):
    """Bytes of another encoding in argv (surrogate escapes) raised UnicodeEncodeError in Piper."""
    out = tmp_path / "o.mp4"
    res = subprocess.run([os.fsencode(a) for a in CLI] + [b"say", os.fsencode(sam), b"--text", b"caf\xe9 \xff ok",
                                                          b"-o", os.fsencode(out)], capture_output=True, timeout=300)
    assert_refused(res, out, "--text", "UTF-8", "0xe9")


@pytest.mark.parametrize("text, script", [("你好，世界。今天天气很好，我们去公园散步吧。", "Chinese"),
                                          ("مرحبا بالعالم، كيف حالك اليوم؟", "Arabic")])
def test_cli_text_in_another_script_is_refused_naming_it(tmp_path, sam, text, script):
    """Chinese was read as "Chinese letter ..." about ten times, Arabic as 18 s of "Arabic letter ..."."""
    out = tmp_path / "o.mp4"
    assert_refused(run_cli("say", sam, "--text", text, "-o", str(out)), out, "--text", script, "English")


# ---- 18. silence is refused before anything is rendered ----

class CountingSource:
    """A FaceSource that counts what it is asked to do."""

    name = "counting"
    size = (32, 32)

    def __init__(self, needs_speech: bool):
        self.needs_speech = needs_speech
        self.animated = self.rendered = 0

    def animate(self, segment, speech):
        self.animated += 1
        return segment.num_frames, segment.first_frame

    def render(self, drive):
        self.rendered += 1
        n, f0 = drive
        return VideoFrames(torch.zeros((n, 32, 32, 3), dtype=torch.uint8), 25.0, f0)


@pytest.mark.parametrize("needs_speech", [True, False])
def test_silent_audio_is_refused_before_rendering(tmp_path, needs_speech):
    """300 s of silence were rendered in full (38 s) before the "no speech" error; the speech map
    is now decided by a streaming pre-scan before the first frame."""
    silent = tone_wav(tmp_path / "silence.wav", 30.0, level=0.0)
    source = CountingSource(needs_speech)
    with pytest.raises(InputError, match="silence.wav: no speech found"):
        next(say_chunks(source, audio=silent))
    assert source.animated == source.rendered == 0


def test_tiny_audio_with_sound_gives_a_video_for_a_source_that_listens(tmp_path):
    """A twin (a source that listens to the audio itself) renders even 0.02 s of sound: one frame."""
    source = CountingSource(needs_speech=False)
    chunks = list(say_chunks(source, audio=tone_wav(tmp_path / "tiny.wav", 0.02)))
    assert sum(c.video.num_frames for c in chunks) == 1


# ---- 9. awkward audio and images: a warning and a valid video ----

def test_cli_truncated_wav_and_animated_gif_warn_and_still_render(tmp_path):
    from PIL import Image

    im = Image.open(media("portrait/sam_512.jpg")).convert("RGB")
    gif = tmp_path / "anim.gif"
    im.save(gif, save_all=True, append_images=[im.rotate(3), im.rotate(-3)], duration=100, loop=0)
    whole = media("audio/hdtf_radio31_en.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    out = tmp_path / "o.mp4"
    res = run_cli("say", str(gif), "--audio", str(cut), "--size", "128", "-o", str(out))
    stderr = " ".join(res.stderr.decode().split())
    assert res.returncode == 0, stderr
    assert "cut.wav: the file is truncated" in stderr and "8.0 s" in stderr and "4.8 s" in stderr
    # rich wraps long temporary paths anywhere (even before the colon): compare without spaces
    assert "anim.gif:ananimatedimage(3frames)" in "".join(stderr.split())
    assert probe_mp4(out)["video_duration"] == pytest.approx(4.8, abs=0.05)


# ---- 17. nothing written to $TMPDIR ----

def test_cli_job_leaves_tmpdir_empty(tmp_path, sam):
    """onnxruntime's telemetry wrote a 51-byte `.ses` file into $TMPDIR on every run."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "o.mp4"
    env = dict(os.environ, TMPDIR=str(tmp))
    env.pop("ORT_DISABLE_TELEMETRY", None)
    res = run_cli("say", sam, "--text", "Hello there.", "--size", "128", "-o", str(out), env=env)
    assert res.returncode == 0, res.stderr.decode()
    assert out.exists()
    assert sorted(p.name for p in tmp.iterdir()) == []
