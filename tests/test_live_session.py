"""Live portrait sessions (facecast.live.session): contiguous frames whatever the push size, the
look-ahead, idle frames in silence, barge-in, text input, typed messages, bounded buffers, clear
errors for bad input, and output unchanged by the live package's split (recorded digests).

Most tests inject a cheap renderer (the portrait repeated): they check timing, audio and motion,
which do not depend on the pixels. The text test renders for real at 128x128.
No test asserts on wall-clock speed."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from facecast.errors import InputError
from facecast.live.messages import AudioIn, EndInput, Interrupt, SpeechIn, TextIn
from facecast.live.session import Session, StreamSession
from facecast.live.text import SentenceSplitter
from facecast.options import MotionOptions, StreamOptions
from facecast.types import AudioChunk, MotionFrames
from live_helpers import FPS, OPEN, ToneVoice, check_contiguous, jfk_speech, pieces, portrait128, run, still

LOOKAHEAD = StreamOptions().lookahead_s


@pytest.fixture(scope="module")
def portrait():
    return portrait128()


@pytest.fixture(scope="module")
def speech():
    return jfk_speech()


def session(portrait, **kw):
    render = kw.pop("render", None) or still(portrait)
    return StreamSession(portrait, StreamOptions(size=128, realtime=False, **kw), render=render)


# ---------------------------------------------------------------------------------------------


def test_push_size_does_not_change_the_frames(portrait, speech):
    expected = math.ceil(speech.duration * FPS - 1e-9)
    motions = {}
    for hop in (0.01, 0.02, 0.137, 1.0):
        chunks = run(session(portrait), speech, hop)
        assert check_contiguous(chunks) == expected, hop
        motions[hop] = np.concatenate([c.motion.params for c in chunks])
        audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
        assert np.abs(audio).max() > 0.05  # the speech comes back out
    # Each frame is computed from the same stretch of input whatever the push size, so the
    # motion is identical.
    for hop in (0.01, 0.137, 1.0):
        np.testing.assert_allclose(motions[hop], motions[0.02], atol=1e-6)
    jaw = motions[0.02][:, 0]
    assert jaw.max() > OPEN, "the mouth should open for speech"


def test_lookahead_is_respected(portrait, speech):
    sess = session(portrait)
    pushed = 0.0
    out = 0
    for piece in pieces(speech, 0.02):
        sess.push_audio(piece)
        pushed += piece.duration
        for c in sess.poll():
            last_t = (c.first_frame + c.num_frames - 1) / FPS
            assert last_t + LOOKAHEAD <= pushed + 1e-6, f"frame at {last_t:.2f}s out with only {pushed:.3f}s of audio"
            out += c.num_frames
        # ... and no later than needed: every frame whose look-ahead has arrived is out.
        due = pushed - LOOKAHEAD
        assert out == (math.floor(due * FPS + 1e-6) + 1 if due >= 0 else 0)
    rest = sess.close()
    assert out + sum(c.num_frames for c in rest) == math.ceil(speech.duration * FPS - 1e-9)


def test_silence_keeps_the_avatar_alive(portrait):
    # Driven by a clock alone: idle frames, mouth closed, blinks, head drifting.
    sess = session(portrait, lookahead_s=0.1)
    chunks = []
    for k in range(1, 151):
        sess.advance_to(k * 0.2)
        chunks += sess.poll()
    assert check_contiguous(chunks) == math.floor((30.0 - 0.1) * FPS + 1e-6) + 1
    params = np.concatenate([c.motion.params for c in chunks])
    motion = MotionFrames(params, FPS, 0)
    assert np.abs(motion.column("jaw_open")).max() < 0.02
    assert np.abs(motion.column("lip_close")).max() < 0.02
    blinks = np.diff((motion.column("blink") > 0.8).astype(int)).clip(0).sum()
    assert blinks >= 3, f"only {blinks} blinks in 30 s of idling"
    assert np.ptp(motion.column("head_yaw")) > 0.005 and np.ptp(motion.column("head_pitch")) > 0.003
    assert np.abs(np.diff(params, axis=0)[:, 7:]).max() < 0.01  # drift, not jumps
    audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
    assert not audio.any()
    # Silent audio pushed as input gives the same closed mouth.
    sess = session(portrait)
    quiet = run(sess, AudioChunk(np.zeros((1, 16000 * 3), np.float32), 16000), 0.02)
    assert np.abs(np.concatenate([c.motion.column("jaw_open") for c in quiet])).max() < 0.02


def test_barge_in_returns_the_mouth_to_rest_smoothly(portrait, speech):
    sess = session(portrait)
    chunks = []
    # Speak until the mouth is clearly open, then interrupt.
    for piece in pieces(speech, 0.02):
        sess.push_audio(piece)
        chunks += sess.poll()
        if chunks and chunks[-1].motion.params[-1, 0] > OPEN and chunks[-1].end > 0.6:
            break
    else:
        pytest.fail("the mouth never opened")
    cut = sess._next_frame  # first frame not computed yet: the interrupt happens here
    jaw_before = chunks[-1].motion.params[-1, 0]
    sess.interrupt()
    for k in range(1, 26):  # the clock goes on, in silence
        sess.advance_to(cut / FPS + k * 0.02)
        chunks += sess.poll()
    chunks += sess.poll()
    n = check_contiguous(chunks)
    assert n >= cut + 8
    params = np.concatenate([c.motion.params for c in chunks])
    jaw = params[:, 0]
    after = np.arange(n) / FPS
    settled = after >= (cut - 1) / FPS + 0.1  # 100 ms after the last frame before the interrupt
    assert np.abs(jaw[settled]).max() < 0.03, jaw[cut - 1:cut + 6]
    assert np.abs(jaw[cut:cut + 1] - jaw_before) < 0.5 * jaw_before + 1e-6  # eased, not cut
    steps = np.abs(np.diff(params[cut - 1:cut + 6], axis=0))
    assert steps.max() <= 0.45 * max(jaw_before, 0.1), steps.max(axis=0)  # at least 3 steps down: no pop
    # What was pushed but not yet shown is gone: silence after the interrupt point.
    audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
    assert not audio[:, round(cut / FPS * 48000):].any()
    # A new utterance after the barge-in speaks again, on the same clock.
    more = run(sess, speech, 0.02)
    assert more[0].first_frame == n
    assert np.concatenate([c.motion.column("jaw_open") for c in more]).max() > OPEN


def test_text_in_pieces_speaks_sentence_by_sentence(portrait):
    sess = StreamSession(portrait, StreamOptions(size=128, realtime=False))
    chunks = []
    for piece in ["Hello", " there.", " How are", " you", " today?"]:
        sess.push_text(piece)
        chunks += sess.poll()
    assert chunks, "the first sentence should be spoken before the text ends"
    chunks += sess.close()
    n = check_contiguous(chunks)
    assert n == math.ceil(sess.input_end * FPS - 1e-9) and n > 25
    assert chunks[0].video.frames.shape[1:] == (128, 128, 3)
    jaw = np.concatenate([c.motion.column("jaw_open") for c in chunks])
    assert jaw.max() > OPEN
    assert SentenceSplitter().feed("One. Two") == ["One."]


def test_buffers_stay_bounded_on_a_long_stream(portrait, speech):
    sess = session(portrait, max_utterance_s=1.0)
    clip = AudioChunk(speech.samples[:, : int(2.0 * 44100)], 44100)
    longest = 0
    for _ in range(6):  # 12 s of speech, then 30 s of idling
        for piece in pieces(clip, 0.1):
            sess.push_audio(piece)
            sess.poll()
            longest = max(longest, sess._listener.rec.fed)
    assert longest <= 1.15 * 16000  # the recogniser restarts (memory stays flat in long speech)
    t = sess.input_end
    for k in range(1, 151):
        sess.advance_to(t + k * 0.2)
        sess.poll()
    assert sess._tape.ana._n < 2 * 16000 and sess._tape.out._n < 48000
    assert len(sess._tape.regions) <= 3 and len(sess._listener.final) < 60 and len(sess._listener.vdec) < 40
    assert sess._listener.vad._hist.size < 100 and not sess._pending


def test_bad_inputs_give_clear_errors(portrait):
    sess = session(portrait)
    with pytest.raises(TypeError, match="AudioChunk"):
        sess.push_audio(np.zeros((1, 320), np.float32))
    bad = np.zeros((1, 320), np.float32)
    bad[0, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        sess.push_audio(AudioChunk(bad, 16000))
    with pytest.raises(InputError, match="float"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.int16), 16000))
    with pytest.raises(InputError, match="sample rate"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.float32), 0))
    with pytest.raises(InputError, match="empty"):
        sess.push_text("")
    with pytest.raises(TypeError, match="str"):
        sess.push_text(b"hello")
    with pytest.raises(ValueError, match="lookahead_s"):
        StreamSession(portrait, StreamOptions(lookahead_s=0.5))
    sess.close()
    with pytest.raises(RuntimeError, match="closed"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.float32), 16000))


def mixed_input(sess, speech):
    """Every kind of input: text pieces, live audio with a barge-in, an idle clock, known speech."""
    chunks = []
    for t in ["Good", " morning to", " you. And", " more"]:
        sess.push_text(t)
        chunks += sess.poll()
    for i, p in enumerate(pieces(speech, 0.037)):
        sess.push_audio(p)
        chunks += sess.poll()
        if i == 30:
            sess.interrupt()
    t = sess.input_end
    for k in range(1, 20):
        sess.advance_to(t + 0.1 * k)
        chunks += sess.poll()
    v = next(ToneVoice().synthesize("one two three"))
    sess.push_speech(v.audio, v.phones)
    chunks += sess.poll()
    sess.end_input()
    chunks += sess.poll()
    return chunks + sess.close()


def digest(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(f"{c.first_frame},{c.num_frames}|".encode())
        h.update(np.ascontiguousarray(c.motion.params, np.float32).tobytes())
        h.update(np.ascontiguousarray(c.audio.samples, np.float32).tobytes())
    return h.hexdigest()


# Motion and audio of every frame. First recorded with facecast.stream.StreamSession of d080aaf
# (before the live package; phones f937cb10..., loudness dea310c2...), which the live split
# matched bit for bit (issue #13). Re-recorded after issue #17's deliberate motion changes
# (blink timing, brows and nods on stressed syllables) at the merge of l-photo, on the 2-core
# dev machine (torch 2.13 CPU, onnxruntime 1.31, pocketsphinx 5.1.1). Another machine's
# libraries may change the last bits of the recogniser or VAD; re-record there before trusting
# a mismatch. "phones" re-recorded again on purpose (branch l-liveemph): live streams now judge
# stressed vowels once settled and heard, with pitch, so the brows and nods fire live (before,
# never); "loudness" (no phones) did not change.
RECORDED = {"phones": (173, "6c81b839c3e06213838e27f396745ef54fe6836231c5ff4b6832121e263c0d57"),
            "loudness": (173, "e2e124fa7cc4540ea4bd694b7fe4c5f3fd6968d988cb0a1a8911f7035eeb5b61")}


@pytest.mark.parametrize("drive", ["phones", "loudness"])
def test_output_is_the_recorded_stream(portrait, speech, drive):
    sess = StreamSession(portrait, StreamOptions(size=128, realtime=False, motion=MotionOptions(drive=drive)),
                         render=still(portrait), voice=ToneVoice())
    chunks = mixed_input(sess, speech)
    assert (check_contiguous(chunks), digest(chunks)) == RECORDED[drive]


def test_typed_messages_are_the_push_calls(portrait, speech):
    """feed(AudioIn / TextIn / SpeechIn / Interrupt / EndInput) is push_audio / push_text /
    push_speech / interrupt / end_input: the same input as messages gives the same stream."""
    sess = StreamSession(portrait, StreamOptions(size=128, realtime=False), render=still(portrait), voice=ToneVoice())
    assert isinstance(sess, Session)
    chunks = []
    for t in ["Good", " morning to", " you. And", " more"]:
        sess.feed(TextIn(t))
        chunks += sess.poll()
    for i, p in enumerate(pieces(speech, 0.037)):
        sess.feed(AudioIn(p))
        chunks += sess.poll()
        if i == 30:
            sess.feed(Interrupt())
    t = sess.input_end
    for k in range(1, 20):
        sess.advance_to(t + 0.1 * k)
        chunks += sess.poll()
    v = next(ToneVoice().synthesize("one two three"))
    sess.feed(SpeechIn(v.audio, v.phones))
    chunks += sess.poll()
    sess.feed(EndInput())
    chunks += sess.poll()
    chunks += sess.close()
    assert (check_contiguous(chunks), digest(chunks)) == RECORDED["phones"]
    assert sess.closed and sess.lookahead_s == LOOKAHEAD
    with pytest.raises(TypeError, match="AudioIn, TextIn"):
        StreamSession(portrait, StreamOptions(size=128), render=still(portrait)).feed(AudioChunk(np.zeros((1, 9)), 16000))
