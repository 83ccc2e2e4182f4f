"""The Engine (facecast.live.engine): a long-lived object a server holds - add sessions, feed
them, read their chunks, remove one, close - whose frames equal a lone session's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.errors import InputError
from facecast.live.engine import Engine
from facecast.live.messages import AudioIn, EndInput, SpeechIn, TextIn
from facecast.live.options import EngineOptions
from facecast.live.session import StreamSession
from facecast.live.twin_session import TwinSession
from facecast.options import StreamOptions
from facecast.types import AudioChunk
from live_helpers import check_contiguous, jfk_speech, pieces, portrait128

OPTIONS = StreamOptions(size=128, realtime=False, fmp4=True, chunk_frames=5)


@pytest.fixture(scope="module")
def portrait():
    return portrait128()


@pytest.fixture(scope="module")
def speech():
    return jfk_speech()


def read_all(engine, sids):
    got = {s: [] for s in sids}
    while not all(engine.done(s) for s in sids):
        engine.wait(1.0)
        for s in sids:
            got[s] += engine.read(s)
    return got


def test_engine_streams_equal_a_lone_session(portrait, speech):
    """Two sessions in a worker process, fed the same speech; one is removed half-way, the other
    ends: its frames, motion, audio and fMP4 are those of a lone StreamSession fed the same."""
    lone = StreamSession(portrait, OPTIONS)
    expected = []
    for piece in pieces(speech, 0.02):
        lone.push_audio(piece)
        expected += lone.poll()
    expected += lone.close()

    with Engine(EngineOptions(size=128, workers=1, encoders=1)) as engine:
        a, b = engine.add(portrait, OPTIONS), engine.add(portrait, OPTIONS)
        assert engine.lookahead_s(a) == OPTIONS.lookahead_s
        early = []
        for k, piece in enumerate(pieces(speech, 0.02)):
            engine.feed(a, AudioIn(piece))
            if k < 60:
                engine.feed(b, AudioIn(piece))
            elif k == 60:
                early = engine.read(b)
                engine.remove(b)  # a client went away
        engine.feed(a, EndInput())
        got = read_all(engine, [a])[a]
        with pytest.raises(KeyError):
            engine.read(b)
        assert len(engine.pids) == 2 and engine.stats()["frames_rendered"] >= check_contiguous(got)
    n = check_contiguous(got)
    assert n == check_contiguous(expected) == 60
    assert all(c.first_frame < 60 for c in early)
    for field in ("video", "audio"):
        x = np.concatenate([getattr(c, field).frames.numpy() if field == "video" else c.audio.samples for c in got],
                           axis=0 if field == "video" else 1)
        y = np.concatenate([getattr(c, field).frames.numpy() if field == "video" else c.audio.samples for c in expected],
                           axis=0 if field == "video" else 1)
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(np.concatenate([c.motion.params for c in got]),
                                  np.concatenate([c.motion.params for c in expected]))
    assert b"".join(c.fmp4 for c in got) == b"".join(c.fmp4 or b"" for c in expected)


def test_engine_in_process_portrait_and_twin(portrait, speech, tiny_twin):
    """workers=0: every session runs in the engine's process; a twin and a portrait side by side
    (told apart by what the face is), no encoders: chunks carry the frames."""
    from facecast.twin.generate import Twin

    twin = Twin.load(tiny_twin[0], size=128)
    opts = StreamOptions(size=128, realtime=False)
    with Engine(EngineOptions(size=128, workers=0, encoders=0)) as engine:
        p, t = engine.add(portrait, opts), engine.add(str(tiny_twin[0]), opts)
        for piece in pieces(speech, 0.05):
            engine.feed(p, AudioIn(piece))
            engine.feed(t, AudioIn(piece))
        for s in (p, t):
            engine.feed(s, EndInput())
        got = read_all(engine, [p, t])
        assert engine.lookahead_s(t) > opts.lookahead_s  # the mouth model's
        with pytest.raises(ValueError, match="encoders"):
            engine.add(portrait, StreamOptions(size=128, fmp4=True))
    n = check_contiguous(got[p])
    assert n == check_contiguous(got[t], motion=False) == int(np.ceil(speech.duration * 25 - 1e-9))
    assert all(c.motion is None and c.fmp4 is None for c in got[t])
    # The twin's frames are its own render of the same mouths as a lone TwinSession's.
    lone = TwinSession(twin)
    ref = []
    for piece in pieces(speech, 0.05):
        lone.push_audio(piece)
        ref += lone.poll()
    ref += lone.close()
    x = torch.cat([c.video.frames for c in got[t]]).float()
    y = torch.cat([c.video.frames for c in ref]).float()
    assert x.shape == y.shape and float((x - y).abs().mean()) < 0.5


def test_engine_input_errors(portrait):
    with Engine(EngineOptions(size=128, workers=1, encoders=0)) as engine:
        with pytest.raises(ValueError, match="preview_jpeg"):
            engine.add(portrait, StreamOptions(size=128, preview_jpeg=80))
        with pytest.raises(ValueError, match="this engine renders 128x128"):
            engine.add(_small(portrait), StreamOptions(size=128))
        s = engine.add(portrait, StreamOptions(size=128, realtime=False))
        bad = np.zeros((1, 320), np.float32)
        bad[0, 3] = np.nan
        with pytest.raises(InputError, match="NaN"):  # checked here, not in the worker
            engine.feed(s, AudioIn(AudioChunk(bad, 16000)))
        with pytest.raises(InputError, match="empty"):
            engine.feed(s, TextIn(""))
        with pytest.raises(TypeError, match="AudioIn, TextIn"):
            engine.feed(s, AudioChunk(np.zeros((1, 320), np.float32), 16000))
        # An error inside the session (in its worker) comes back on the next read.
        engine.feed(s, SpeechIn(AudioChunk(np.zeros((1, 320), np.float32), 16000), ("AA",)))
        with pytest.raises(TypeError, match="PhoneSpans"):
            for _ in range(100):
                engine.read(s)
                engine.wait(0.1)
    with pytest.raises(RuntimeError, match="closed"):
        engine.add(portrait)


def _small(portrait):
    from facecast.types import Portrait

    return Portrait(portrait.image[:64, :64].copy(), portrait.face, "cut")
