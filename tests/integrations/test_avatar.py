"""facecast.integrations.avatar: a live session as one RGB frame + its PCM per video frame on a
simulated clock (no framework): frames exactly when their look-ahead is in, speech flagged where
it was fed, marks, interruptions by epoch, bad PCM."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import media
from facecast.integrations.avatar import AvatarOptions, AvatarStream, Mark, pcm_to_chunk, prepare_face
from facecast.types import AudioChunk

RATE = 24000
FPS = 25
EARLY = 0.005  # s: a frame may be made this much before ready_at (resampler slack + tick slack)


@pytest.fixture(scope="module")
def face():
    return prepare_face(media("portrait/sam_512.jpg"), AvatarOptions(size=128))


def speech(seconds: float) -> AudioChunk:
    from facecast.audio import load_audio

    a = load_audio(media("audio/jfk_en.flac"), sample_rate=RATE, mono=True)
    return AudioChunk(np.ascontiguousarray(a.samples[:, :int(seconds * RATE)]), RATE)


def run(stream, frames, t, until, step=0.01):
    """Tick every ``step`` s up to ``until``; each frame is noted with the tick that made it."""
    while t < until - 1e-9:
        t = round(t + step, 6)
        frames += [(t, f) for f in stream.tick(t)]
    return t


def test_frames_on_the_clock_speech_marks_and_interruption(face):
    o = AvatarOptions(size=128, fps=FPS)
    s = AvatarStream(face, o, RATE)
    frames: list = []
    t = run(s, frames, 0.0, 0.5)
    # Idle frames leave at the first tick after their look-ahead of silence is in, never before
    # (the session may start 3 ms early: it does not wait for what a resampler holds back).
    assert frames and all(s.ready_at(f.index) - EARLY <= tt < s.ready_at(f.index) + 0.011 for tt, f in frames)
    assert not any(f.speech for _, f in frames) and not any(any(f.audio) for _, f in frames)
    # Speech queued now starts where the clock's silence ends (t - jitter) and lasts its length.
    s.put(speech(1.0))
    before = Mark()
    s.put(before)
    assert s.queued and before.position is None
    t = run(s, frames, t, 1.0)
    start = before.position - 1.0
    assert start == pytest.approx(0.5 - o.jitter_s, abs=0.002) and s.speech_end == before.position
    # Barge-in at t = 1.0: what was queued before it goes, what comes for the next epoch waits.
    late, nxt = Mark(), Mark()
    s.put(speech(0.5), epoch=0)
    s.put(late, epoch=0)
    s.put(nxt, epoch=1)
    cut = s.interrupt(epoch=1)
    assert late.dropped and nxt.position == s.speech_end == pytest.approx(cut / FPS, abs=1e-3)
    assert cut >= frames[-1][1].index + 1 and cut < (1.0 - o.jitter_s) * FPS + 1
    run(s, frames, t, 2.0)
    s.close()
    idx = [f.index for _, f in frames]
    assert idx == list(range(len(idx)))
    for tt, f in frames:
        assert (f.width, f.height, len(f.image)) == (128, 128, 128 * 128 * 3)
        a0, a1 = round(f.index * RATE / FPS), round((f.index + 1) * RATE / FPS)
        assert len(f.audio) == 2 * (a1 - a0) and f.channels == 1
        # Never drawn ahead of the clock (a barge-in still changes every later frame), never late.
        assert f.index / FPS + o.jitter_s < tt < s.ready_at(f.index) + 0.011
        # Speech exactly where it was fed (up to the cut), silence elsewhere.
        lo, hi = f.index / FPS, (f.index + 1) / FPS
        fed = min(hi, start + 1.0, cut / FPS) - max(lo, start) > 1e-3
        assert f.speech == fed, f"frame {f.index}"
        if not fed and (hi <= start or lo >= cut / FPS):
            assert not any(f.audio)
    talking = [f for _, f in frames if f.speech]
    assert abs(len(talking) - (cut / FPS - start) * FPS) <= 1
    loud = np.abs(np.frombuffer(b"".join(f.audio for f in talking), "<i2")).max()
    assert loud > 3000  # real speech, not silence


def test_bad_input_is_refused(face):
    with pytest.raises(ValueError, match="not whole 16-bit samples"):
        pcm_to_chunk(b"\x00\x01\x02", RATE, 1)
    with pytest.raises(ValueError, match="3 channels"):
        pcm_to_chunk(b"\x00" * 12, RATE, 3)
    with pytest.raises(TypeError, match="bytes"):
        pcm_to_chunk(np.zeros(4, np.int16), RATE, 1)
    chunk = pcm_to_chunk(np.array([0, 16384, -32768, 32767], "<i2").tobytes(), RATE, 2)
    np.testing.assert_allclose(chunk.samples, [[0, -1.0], [0.5, 32767 / 32768]])
    with pytest.raises(TypeError, match="AvatarOptions"):
        AvatarStream(face, object(), RATE)
    with pytest.raises(TypeError, match="face must be"):
        prepare_face(3.5)
    s = AvatarStream(face, AvatarOptions(size=128), RATE)
    with pytest.raises(TypeError, match="AudioChunk or a Mark"):
        s.put(b"\x00\x00")
    with pytest.raises(ValueError, match="finite"):
        s.tick(float("nan"))
    s.close()
