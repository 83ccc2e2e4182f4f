"""`facecast script` end to end at a tiny size, and its bad input: one `error:` line naming
FILE:LINE (or the flag), exit 2, nothing left behind."""

from __future__ import annotations

import os
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facecast.cli import app
from facecast.media import probe_mp4
from facecast.show import example_script

EXAMPLES = example_script().parent


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    return lines[0]


def nothing_left(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.suffix in (".mp4", ".srt", ".vtt") or "partial" in p.name]
    assert not left, left


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "astronaut.jpg", tmp_path / "ana.jpg")
    shutil.copy(EXAMPLES / "hopper.jpg", tmp_path / "ben.jpg")
    rate = 16000
    t = np.arange(int(0.8 * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * 32767).astype("<i2")
    with wave.open(str(tmp_path / "take.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return tmp_path


SHOW = """---
title: tiny
size: 256x128
layout: split
captions: on
speakers:
  ANA: {face: ana.jpg}
  BEN: {face: ben.jpg, rate: 1.2}
---
ANA: Hello Ben. [pause 0.3] Ready?
BEN: [audio: take.wav | Yes.]
BEN: Let us begin.
"""


def srt_times(text: str) -> list[tuple[float, float]]:
    def sec(s: str) -> float:
        h, m, rest = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest.replace(",", "."))

    return [(sec(a), sec(b)) for a, b in re.findall(r"(\S+) --> (\S+)", text)]


def test_a_tiny_show_end_to_end(folder):
    (folder / "show.md").write_text(SHOW)
    out = folder / "show.mp4"
    r = invoke("script", folder / "show.md", "-o", out, "--subtitles", "both", "--burn-subtitles")
    assert r.exit_code == 0, r.output
    info = probe_mp4(out)
    assert (info["width"], info["height"]) == (256, 128)
    assert 3.0 < info["video_duration"] < 8.0
    assert info.get("audio_duration", info["video_duration"]) > 2.0
    srt = (folder / "show.srt").read_text()
    vtt = (folder / "show.vtt").read_text()
    assert "Hello Ben." in srt and "Ready?" in srt and "Yes." in srt and "Let us begin." in srt
    assert vtt.startswith("WEBVTT") and "<v ANA>Hello <" in vtt and "<v BEN>" in vtt
    times = srt_times(srt)
    assert all(a < b for a, b in times) and all(b1 <= a2 + 1e-3 for (_, b1), (a2, _) in zip(times, times[1:]))
    assert times[-1][1] <= info["video_duration"] + 1e-3
    assert not list(folder.glob(".*partial*"))


def test_solo_layout_and_flags(folder):
    (folder / "show.md").write_text(SHOW)
    out = folder / "solo.mp4"
    r = invoke("script", folder / "show.md", "-o", out, "--layout", "solo", "--size", "128x128", "--no-captions",
               "--fps", "20", "--min-shot", "0")
    assert r.exit_code == 0, r.output
    info = probe_mp4(out)
    assert (info["width"], info["height"]) == (128, 128) and info["fps"] == pytest.approx(20)
    assert not (folder / "solo.srt").exists()


BAD_SCRIPTS = [
    (SHOW + "CARL: Hi.\n", 13, "unknown speaker 'CARL'"),
    (SHOW.replace("ben.jpg", "nobody.jpg"), 8, "nobody.jpg not found"),
    (SHOW.replace("layout: split", "layout: stack"), 4, "bad front matter"),
    (SHOW + "ANA:   \n", 13, "empty line of speech"),
    (SHOW + "ANA: Hi [smile] there.\n", 13, "bad directive"),
    (SHOW + "ANA: Hi [pause 99] there.\n", 13, "at most 60"),
    (SHOW.replace("rate: 1.2", "rate: 9"), 8, "rate 9 must be"),
    (SHOW.replace("ben.jpg, rate: 1.2", "ben.jpg, voice: fake.onnx"), 8, "is not a Piper voice"),
    (SHOW.replace("ben.jpg, rate", "wall.png, rate"), 8, "speaker BEN: face:"),
]


@pytest.mark.parametrize("text,line,words", BAD_SCRIPTS, ids=[b[2] for b in BAD_SCRIPTS])
def test_script_mistakes_exit_2_naming_the_line(folder, text, line, words):
    (folder / "fake.onnx").write_bytes(b"nope")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(folder / "wall.png")
    (folder / "show.md").write_text(text)
    r = invoke("script", folder / "show.md", "-o", folder / "show.mp4", "--subtitles", "both")
    assert r.exit_code == 2, r.output
    msg = one_error_line(r.output)
    assert f"show.md:{line}: " in msg and words in msg, msg
    nothing_left(folder)


@pytest.mark.parametrize("args,words", [
    (["--size", "100x33"], "--size 100x33: must be WIDTHxHEIGHT"),
    (["--size", "big"], "--size big: must be WIDTHxHEIGHT"),
    (["--fps", "0"], "--fps 0.0: must be a number in 1 ... 120"),
    (["--subtitles", "ass"], "--subtitles ass: must be one of none, srt, vtt, both"),
    (["--layout", "stack"], "--layout stack: must be one of split, solo, grid"),
    (["--min-shot", "-1"], "--min-shot -1.0: must be a number in 0 ... 60"),
    (["--gap", "10"], "--gap 10.0: must be a number in 0 ... 5"),
    (["--video-loop", "0.5"], "--video-loop 0.5: must be a number in 1 ... 600"),
    (["--crf", "99"], "--crf 99: must be"),
])
def test_bad_flags_exit_2(folder, args, words):
    (folder / "show.md").write_text(SHOW)
    r = invoke("script", folder / "show.md", "-o", folder / "show.mp4", *args)
    assert r.exit_code == 2, r.output
    assert words in one_error_line(r.output)
    nothing_left(folder)


def test_bad_paths_exit_2(folder):
    (folder / "show.md").write_text(SHOW)
    r = invoke("script", folder / "show.md", "-o", folder / "no" / "show.mp4")
    assert r.exit_code == 2 and "does not exist" in one_error_line(r.output)
    r = invoke("script", folder / "show.md", "-o", folder / "show.md")
    assert r.exit_code == 2 and "unsupported output type" in one_error_line(r.output)
    r = invoke("script", folder / "none.md", "-o", folder / "show.mp4")
    assert r.exit_code == 2 and "script not found" in one_error_line(r.output)
    r = invoke("script", "-o", folder / "show.mp4")
    assert r.exit_code == 2 and "give a script file or --example" in one_error_line(r.output)
    r = invoke("script", folder / "show.md")
    assert r.exit_code == 2 and "-o FILE.mp4" in one_error_line(r.output)
    shutil.copy(folder / "show.md", folder / "show.srt")
    (folder / "show.md").write_text(SHOW.replace("ana.jpg", "show.srt", 1))  # an input named like the subtitles
    r = invoke("script", folder / "show.md", "-o", folder / "show.mp4", "--subtitles", "srt")
    assert r.exit_code == 2 and "input" in one_error_line(r.output)
    assert (folder / "show.srt").read_text() == SHOW and not (folder / "show.mp4").exists()


def test_a_failure_mid_show_leaves_nothing(folder, monkeypatch):
    from facecast.show import render as render_mod
    from facecast.show import render_script

    (folder / "show.md").write_text(SHOW)
    calls = {"n": 0}
    real = render_mod.Show.direct

    def failing(self, beat):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(self, beat)

    monkeypatch.setattr(render_mod.Show, "direct", failing)
    with pytest.raises(RuntimeError, match="boom"):
        render_script(folder / "show.md", folder / "show.mp4",
                      render_mod.ScriptOptions(width=128, height=64, subtitles="both"))
    nothing_left(folder)
    assert os.listdir(folder)  # the inputs are still there
