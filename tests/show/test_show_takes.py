"""Subtitles of recorded takes (show/takes.py): a transcript force-aligned to the take, words
recognised (and marked) without one, a warning and no guessed words for another language or
silence. Real speech from ../shared/media/audio, and a Piper take whose word times are known."""

from __future__ import annotations

import logging
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import media
from facecast.show import ScriptOptions, example_script, render_script
from facecast.show import takes
from facecast.show.takes import Transcriber
from facecast.show.words import transcript_tokens

JFK = "And so, my fellow Americans: ask not what your country can do for you, ask what you can do for your country."


def tokens(text: str) -> list[str]:
    return [t for t, _ in transcript_tokens(text)]


def check_in_order(words, texts, start: float, end: float) -> None:
    assert [w.text for w in words] == texts
    starts = [w.start for w in words]
    assert all(a < b for a, b in zip(starts, starts[1:])), starts
    assert all(start - 1e-6 <= w.start <= w.end <= end + 1e-6 for w in words)


def duration(path: Path) -> float:
    from facecast.audio import open_audio

    return open_audio(path).duration


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber(25.0, 12.0)


def test_a_transcript_is_aligned_to_a_real_take(transcriber):
    path = media("audio/jfk_en.flac")
    took = transcriber.words(path, JFK)
    assert took.how == "aligned" and not took.recognised
    check_in_order(took.words, tokens(JFK), 0.0, duration(path))
    by = {w.text: w for w in took.words}
    # The famous pause after "Americans": the words fall on either side of it.
    assert by["Americans:"].end < 2.6 < took.words[5].start  # "ask"
    assert took.words[-1].end > 9.5


def test_aligned_words_land_on_the_times_a_voice_said_them(tmp_path, transcriber):
    """A take made with Piper, whose word times are known exactly: the alignment finds them."""
    from facecast.audio import write_wav
    from facecast.voice import default_voice

    text = "The quick brown fox jumps over the lazy dog near the river bank."
    said = list(default_voice().synthesize(text))
    audio = np.concatenate([s.audio.mono() for s in said])
    truth = [(w.start, w.end) for s in said for w in s.words]
    path = write_wav(tmp_path / "take.wav", audio, said[0].audio.sample_rate)
    took = transcriber.words(path, text)
    assert took.how == "aligned" and len(took.words) == len(truth) == 13
    # Within ~2 frames at 25 fps: starts come out ~50 ms early against Piper's phoneme clock, ends
    # agree to ~20 ms.
    starts = np.abs(np.array([w.start for w in took.words]) - np.array([a for a, _ in truth]))
    ends = np.abs(np.array([w.end for w in took.words]) - np.array([b for _, b in truth]))
    assert np.median(starts) < 0.09 and starts.max() < 0.2, starts
    assert np.median(ends) < 0.04 and ends.max() < 0.2, ends


def test_without_a_transcript_the_words_are_recognised_and_marked(transcriber):
    path = media("audio/lecture_en.wav")
    took = transcriber.words(path, None)
    assert took.how == "recognised" and took.recognised
    check_in_order(took.words, [w.text for w in took.words], 0.0, duration(path))
    heard = {w.text for w in took.words}
    assert len(heard & {"teaching", "conclusion", "education", "students", "learning", "years"}) >= 4, heard


@pytest.mark.parametrize("name", ["audio/german_de.wav", "audio/news_zh.wav"])
def test_another_language_gets_no_guessed_words(transcriber, name):
    took = transcriber.words(media(name), None)
    assert took.how == "none" and not took.words and "does not sound like English" in took.note


def test_a_silent_take_has_no_words_and_a_transcript_that_does_not_fit_is_spread(tmp_path, transcriber):
    from facecast.audio import write_wav

    silent = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    took = transcriber.words(silent, None)
    assert took.how == "none" and not took.words and "no speech" in took.note
    german = media("audio/german_de.wav")
    took = transcriber.words(german, JFK)
    assert took.how == "spread" and "does not fit" in took.note
    check_in_order(took.words, tokens(JFK), 0.0, duration(german))


def test_a_long_take_places_its_transcript_on_the_recognised_words(transcriber, monkeypatch):
    path = media("audio/jfk_en.flac")
    aligned = transcriber.words(path, JFK)
    monkeypatch.setattr(takes, "WHOLE_S", 5.0)  # jfk (11 s) is now "long"
    took = transcriber.words(path, JFK)
    assert took.how == "matched"
    check_in_order(took.words, tokens(JFK), 0.0, duration(path))
    err = np.abs(np.array([w.start for w in took.words]) - np.array([w.start for w in aligned.words]))
    assert np.median(err) < 0.1, err


def cue_times(text: str) -> list[tuple[float, float]]:
    def sec(s: str) -> float:
        h, m, rest = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest.replace(",", "."))

    return [(sec(a), sec(b)) for a, b in re.findall(r"(\S+) --> (\S+)", text)]


def silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(seconds * 16000))
    return path


def test_a_show_writes_the_take_subtitles_inside_the_take(tmp_path, caplog):
    shutil.copy(example_script().parent / "astronaut.jpg", tmp_path / "ana.jpg")
    shutil.copy(media("audio/jfk_en.flac"), tmp_path / "jfk.flac")
    shutil.copy(media("audio/german_de.wav"), tmp_path / "de.wav")
    (tmp_path / "show.md").write_text(f"""---
size: 128x128
layout: solo
speakers:
  ANA: ana.jpg
---
ANA: Listen.
ANA: [audio: jfk.flac | {JFK}]
ANA: [audio: de.wav]
ANA: Thanks.
""")
    with caplog.at_level(logging.WARNING):
        out = render_script(tmp_path / "show.md", tmp_path / "show.mp4", ScriptOptions(subtitles="both", fps=10))
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "show.md:9: [audio: de.wav]: no subtitles for this recording: it does not sound like English" in warned
    srt = (tmp_path / "show.srt").read_text()
    vtt = (out.with_suffix(".vtt")).read_text()
    texts = [t for t in re.split(r"\n\d+\n\S+ --> \S+\n", "\n" + srt) if t.strip()]
    assert [t.strip() for t in texts][0] == "Listen." and texts[-1].strip() == "Thanks."
    jfk_cues = cue_times(srt)[1:-1]
    assert jfk_cues  # the take's words, and nothing for the German take
    start = cue_times(srt)[0][1]  # the take starts after "Listen." and a gap
    end = cue_times(srt)[-1][0]
    for a, b in jfk_cues:
        assert start < a < b <= start + 0.25 + 0.1 + duration(tmp_path / "jfk.flac") + 1e-3
        assert b < end - duration(tmp_path / "de.wav")  # the German take has no cues
    assert " ".join(t.strip() for t in texts[1:-1]).split() == JFK.split()
    # The VTT's word times rise through the take.
    stamps = [float(s.split(":")[-1]) + 60 * int(s.split(":")[1]) for s in re.findall(r"<(\d\d:\d\d:\d\d\.\d+)>", vtt)]
    assert len(stamps) > 15 and all(a < b for a, b in zip(stamps, stamps[1:]))
