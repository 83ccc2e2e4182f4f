"""facecast.show.script: the script format, good and bad (every error names FILE:LINE)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facecast.errors import InputError
from facecast.show import example_script, parse_script
from facecast.show.script import Pause, Recording, ScriptError, SpeakText, parse_script_text

FACE = example_script().parent / "astronaut.jpg"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(FACE, tmp_path / "ana.jpg")
    shutil.copy(FACE, tmp_path / "ben.jpg")
    (tmp_path / "take.wav").write_bytes(b"RIFF")  # exists; decoding is checked when rendering
    return tmp_path


def write(folder: Path, text: str) -> Path:
    p = folder / "show.md"
    p.write_text(text, encoding="utf-8")
    return p


HEAD = """---
title: Weekly update
size: 640x360
layout: grid
background: "#102030"
captions: on
speakers:
  ANA:  {face: ana.jpg}
  BEN:  {face: ben.jpg, rate: 1.1}
---
"""


def test_the_issue_example_parses_with_lines_and_parts(folder):
    p = write(folder, HEAD + """# Part one (a comment)
ANA: Welcome back. Today we look at the numbers.

BEN: Thanks, Ana. [pause 0.5] They are better
  than expected.
ANA: [audio: take.wav | What I said on Monday.]
""")
    s = parse_script(p)
    assert (s.title, s.size, s.layout, s.background, s.captions) == ("Weekly update", (640, 360), "grid", (16, 32, 48), True)
    assert list(s.speakers) == ["ANA", "BEN"]
    assert s.speakers["BEN"].rate == 1.1 and s.speakers["BEN"].line == 9
    assert s.speakers["ANA"].face == folder / "ana.jpg" and s.speakers["ANA"].voice is None
    assert [ln.line for ln in s.lines] == [12, 14, 16]
    assert s.lines[0].parts == (SpeakText("Welcome back. Today we look at the numbers."),)
    assert s.lines[1].parts == (SpeakText("Thanks, Ana."), Pause(0.5), SpeakText("They are better than expected."))
    assert s.lines[2].parts == (Recording(folder / "take.wav", "What I said on Monday."),)


def test_defaults_and_shorthand(folder):
    s = parse_script(write(folder, "---\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n"))
    assert (s.size, s.layout, s.captions, s.title) == (None, "split", False, "")
    assert s.speakers["ANA"].rate == 1.0


def test_the_shipped_example_parses():
    s = parse_script(example_script())
    assert len(s.speakers) == 2 and len(s.lines) >= 4
    assert all(sp.face.is_file() for sp in s.speakers.values())


def test_background_image_and_named_colour(folder):
    s = parse_script(write(folder, HEAD.replace('"#102030"', "ana.jpg") + "ANA: Hi.\n"))
    assert s.background == folder / "ana.jpg"
    s = parse_script(write(folder, HEAD.replace('"#102030"', "navy") + "ANA: Hi.\n"))
    assert s.background == (16, 24, 64)


BAD = [
    # (script body after HEAD, or a whole script when it starts with "!", line, words in the message)
    ("ANA: Hello.\nCARL: Hi.\n", 12, "unknown speaker 'CARL'"),
    ("ana: Hello.\n", 11, "Did you mean ANA?"),
    ("ANA:\n", 11, "empty line of speech"),
    ("ANA: [pause 1]\n", 11, "empty line of speech"),
    ("ANA: Hello [wave] there.\n", 11, "bad directive [wave]"),
    ("ANA: Hello [pause] there.\n", 11, "bad directive [pause]"),
    ("ANA: Hello [pause 0] there.\n", 11, "must be a number above 0"),
    ("ANA: Hello [pause -1] there.\n", 11, "must be a number above 0"),
    ("ANA: Hello [pause 61] there.\n", 11, "at most 60"),
    ("ANA: Hello [pause nan] there.\n", 11, "must be a number"),
    ("ANA: Hello [pause 1 there.\n", 11, "unmatched ["),
    ("ANA: [audio: missing.wav]\n", 11, "missing.wav not found"),
    ("ANA: Привет, как у тебя дела сегодня?\n", 11, "Cyrillic script"),
    ("ANA: [audio: ]\n", 11, "give the recording"),
    ("Hello without a name.\n", 11, "expected NAME: text"),
    ("", 10, "no lines of speech"),
    ("!", 0, "the script is empty"),
    ("!ANA: Hi.\n", 1, "bad front matter"),
    ("!---\nspeakers:\n  ANA: {face: ana.jpg}\nANA: Hi.\n", 1, "never closed"),
    ("!---\nspeakers: [unclosed\n---\nANA: Hi.\n", 2, "bad front matter"),
    ("!---\ntitle: x\n---\nANA: Hi.\n", 1, "at least one speaker"),
    ("!---\nlayuot: grid\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "unknown setting 'layuot'"),
    ("!---\nlayout: stack\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "'stack' is not one of split, solo, grid"),
    ("!---\nsize: 1281x720\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "width 1281 must be an even"),
    ("!---\nsize: 1280x10\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "height 10 must be"),
    ("!---\nsize: big\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "not WIDTHxHEIGHT"),
    ("!---\ncaptions: maybe\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "on or off"),
    ("!---\nbackground: #102030\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "must be quoted"),
    ("!---\nbackground: \"#10203\"\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "is not a colour"),
    ("!---\nbackground: nowhere.png\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi.\n", 2, "neither a colour"),
    ("!---\nspeakers:\n  ANA: {face: nobody.jpg}\n---\nANA: Hi.\n", 3, "nobody.jpg not found"),
    ("!---\nspeakers:\n  ANA: {voice: v.onnx}\n---\nANA: Hi.\n", 3, "no face"),
    ("!---\nspeakers:\n  ANA: {face: ana.jpg, voice: v.onnx}\n---\nANA: Hi.\n", 3, "voice file"),
    ("!---\nspeakers:\n  ANA: {face: ana.jpg, rate: 3}\n---\nANA: Hi.\n", 3, "rate 3 must be a number in 0.5 ... 2"),
    ("!---\nspeakers:\n  ANA: {face: ana.jpg, rate: fast}\n---\nANA: Hi.\n", 3, "rate 'fast'"),
    ("!---\nspeakers:\n  ANA: {face: ana.jpg, mood: happy}\n---\nANA: Hi.\n", 3, "unknown setting 'mood'"),
    ("!---\nspeakers:\n  ANA: ana.jpg\n  ANA: ben.jpg\n---\nANA: Hi.\n", 4, "defined twice"),
]


@pytest.mark.parametrize("body,line,words", BAD, ids=[b[2] for b in BAD])
def test_mistakes_name_the_file_and_line(folder, body, line, words):
    text = body[1:] if body.startswith("!") else HEAD + body
    p = write(folder, text)
    with pytest.raises(ScriptError) as info:
        parse_script(p)
    msg = str(info.value)
    assert info.value.line == line, msg
    assert msg.startswith(f"{p}:{line}: " if line else f"{p}: "), msg
    assert words in msg, msg
    assert isinstance(info.value, InputError)


def test_unreadable_script_files(tmp_path):
    with pytest.raises(InputError, match="script not found"):
        parse_script(tmp_path / "none.md")
    with pytest.raises(InputError, match="is a folder"):
        parse_script(tmp_path)
    (tmp_path / "latin1.md").write_bytes("---\nspeakers:\n  AN\xc1: a.jpg\n---\n".encode("latin-1"))
    with pytest.raises(ScriptError, match="not UTF-8"):
        parse_script(tmp_path / "latin1.md")


def test_punctuation_alone_is_not_speech(folder):
    s = parse_script(write(folder, HEAD + "ANA: — [pause 1] Hello. ...\n"))
    assert s.lines[0].parts == (Pause(1.0), SpeakText("Hello. ..."))


def test_parse_text_anchors_relative_paths(folder):
    s = parse_script_text("---\nspeakers:\n  ANA: ana.jpg\n---\nANA: Hi [pause 2s] there.\n", folder / "x.md")
    assert s.lines[0].parts[1] == Pause(2.0)
