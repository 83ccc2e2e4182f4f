"""facecast.show.timeline: the lines as beats that tile the frame grid, with their audio where the
timeline says, pauses and gaps as long as asked, recordings shifted into place."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from facecast.show import example_script
from facecast.show.script import parse_script_text
from facecast.show.takes import Transcriber
from facecast.show.timeline import Timeline
from facecast.voice import default_voice

FPS = 25.0
RATE = 48000


def tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def beats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline")
    shutil.copy(example_script().parent / "astronaut.jpg", folder / "a.jpg")
    tone(folder / "take.wav", 1.3)
    script = parse_script_text("""---
speakers:
  ANA: a.jpg
  BEN: {face: a.jpg, rate: 1.5}
---
ANA: Hello there. [pause 0.7] How are you?
BEN: [audio: take.wav | Fine, thanks.]
BEN: Good.
""", folder / "show.md")
    voice = default_voice()
    tl = Timeline(script, {"ANA": (voice, 1.0), "BEN": (voice, 1.5)}, FPS, RATE, 0.25, 0.5, Transcriber(FPS, 0.5))
    return list(tl.beats()), tl


def test_beats_tile_the_frame_grid(beats):
    bs, tl = beats
    assert bs[0].segment.first_frame == 0
    for a, b in zip(bs, bs[1:]):
        assert b.segment.first_frame == a.segment.first_frame + a.segment.num_frames
        assert b.segment.start >= a.segment.end - 1e-9
        assert b.segment.start * FPS == pytest.approx(round(b.segment.start * FPS))  # on a frame boundary
    last = bs[-1].segment
    assert tl.end == pytest.approx((last.first_frame + last.num_frames) / FPS)


def test_audio_is_where_the_timeline_puts_it(beats):
    bs, _ = beats
    end = 0.0
    for b in bs:
        for c in b.segment.output_audio:
            assert c.sample_rate == RATE and c.channels == 1
            assert c.start >= end - 1.5 / RATE
            # a recording's decoded chunks (1 s) go with the segment they start in
            assert b.segment.start - 1e-6 <= c.start < b.segment.end
            end = c.end


def test_lines_pauses_gaps_and_recordings(beats):
    bs, _ = beats
    who = [(b.speaker, b.index, b.segment.phones is None, bool(b.segment.output_audio)) for b in bs]
    # ANA: sentence, pause, sentence; gap; BEN's take in pieces of <= 0.5 s; gap; BEN: sentence
    assert who[0] == ("ANA", 0, False, True) and who[1] == ("ANA", 0, False, False)
    pause = bs[1].segment
    assert pause.end - pause.start == pytest.approx(0.72, abs=0.04) and pause.phones == ()
    gap = [b for b in bs if b.speaker is None]
    assert len(gap) == 2 and all(0.25 <= g.segment.end - g.segment.start < 0.25 + 1 / FPS + 1e-9 for g in gap)
    take = [b for b in bs if b.index == 1 and b.speaker == "BEN"]
    assert len(take) >= 3 and all(b.segment.phones is None for b in take)
    span = take[-1].segment.end - take[0].segment.start
    assert span == pytest.approx(1.3, abs=0.01)
    samples = sum(c.num_samples for b in take for c in b.segment.output_audio)
    assert samples == pytest.approx(1.3 * RATE, abs=2)
    # A tone is no speech: the transcript does not fit, so it is spread over the whole take.
    assert take[0].cues and take[0].cues[0].start == take[0].segment.start
    assert take[0].cues[-1].end == pytest.approx(take[0].segment.start + 1.3, abs=0.01)


def test_cues_come_with_their_sentence_and_lie_inside_it(beats):
    bs, _ = beats
    said = [b for b in bs if b.cues and b.segment.phones]
    assert [c.text for b in said for c in b.cues] == ["Hello there.", "How are you?", "Good."]
    for b in said:
        seg = b.segment
        voiced = [(p.start, p.end) for p in seg.phones if p.phone != "SIL"]
        for cue in b.cues:
            for w in cue.words:
                assert voiced[0][0] - 1e-6 <= w.start < w.end <= voiced[-1][1] + 1e-6


def test_rate_makes_speech_faster(beats):
    voice = default_voice()
    # Piper draws its durations with noise (a single pair measured 0.72-0.80 apart): three each.
    slow = sum(s.audio.duration for _ in range(3) for s in voice.synthesize("Good morning to you all."))
    fast = sum(s.audio.duration for _ in range(3) for s in voice.synthesize("Good morning to you all.", rate=1.5))
    assert fast < slow * 0.85
