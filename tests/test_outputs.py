"""outputs: an output is never an input, whatever the spelling; its folder must exist (issue #18)."""

from __future__ import annotations

import os

import pytest

from facecast.errors import OutputError
from facecast.outputs import check_output_file, check_output_files, same_file


def test_same_file_sees_through_spellings_symlinks_and_hard_links(tmp_path, monkeypatch):
    a = tmp_path / "talk.mp4"
    a.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.symlink(a, tmp_path / "link.mp4")
    os.link(a, tmp_path / "hard.mp4")
    monkeypatch.chdir(tmp_path)
    assert same_file(a, "talk.mp4") and same_file(a, "./sub/../talk.mp4")
    assert same_file(a, tmp_path / "link.mp4") and same_file(tmp_path / "hard.mp4", a)
    assert not same_file(a, tmp_path / "other.mp4")
    assert same_file(tmp_path / "new.mp4", "./sub/../new.mp4")  # neither exists: same resolved path
    (tmp_path / "copy.mp4").write_bytes(b"x")
    assert not same_file(a, tmp_path / "copy.mp4")  # equal content is not the same file


@pytest.mark.parametrize("spelling", ["talk.mp4", "./talk.mp4", "sub/../talk.mp4", "link.mp4", "hard.mp4"])
def test_output_may_not_be_an_input(tmp_path, monkeypatch, spelling):
    a = tmp_path / "talk.mp4"
    a.write_bytes(b"input")
    (tmp_path / "sub").mkdir()
    os.symlink(a, tmp_path / "link.mp4")
    os.link(a, tmp_path / "hard.mp4")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="audio input"):
        check_output_file(spelling, inputs=[("portrait", "face.jpg"), ("audio", str(a))])
    assert a.read_bytes() == b"input"
    check_output_file("other.mp4", inputs=[("audio", str(a)), ("array", object())])


def test_missing_folder_is_refused_never_created(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "nope" / "x.json")
    with pytest.raises(OutputError, match="--json"):
        check_output_files(("--json", tmp_path / "x.json", None), ("--markdown", None, None),
                           inputs=[("clip", tmp_path / "x.json")])
    assert not (tmp_path / "nope").exists()
    with pytest.raises(OutputError, match="unsupported"):
        check_output_file(tmp_path / "x.gif", suffixes=(".mp4",))
    with pytest.raises(OutputError, match="directory"):
        check_output_file(tmp_path)
