"""The live protocol's parsing (serve.live_protocol) and the fMP4 reader (serve.fmp4_info): every
bad message is a ProtocolError with a specific code, message and close code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecast.serve.fmp4_info import Fmp4Info
from facecast.serve.live_protocol import CLOSE_POLICY, CLOSE_TOO_BIG, End, Interrupt, ProtocolError, Start, Text, \
    event, parse_control, pcm_audio


def test_messages_parse_to_their_types():
    s = parse_control(json.dumps({"type": "start", "face_id": "f123", "fps": 30, "sample_rate": 48000}))
    assert s == Start("f123", fps=30, sample_rate=48000)
    assert parse_control('{"type": "text", "text": "Hello there."}') == Text("Hello there.")
    assert parse_control(b'{"type": "interrupt"}') == Interrupt()
    assert parse_control('{"type": "end"}') == End()
    assert json.loads(event("first_frame", ms=12.5)) == {"type": "first_frame", "ms": 12.5}


@pytest.mark.parametrize("raw, code, words", [
    ("{not json", "bad_json", "not JSON"),
    ("[1, 2]", "bad_message", '"type"'),
    ('{"type": "dance"}', "unknown_type", "'dance'"),
    ('{"type": "start"}', "bad_field", "face_id"),
    ('{"type": "start", "face_id": "f1", "colour": "red"}', "unknown_field", "colour"),
    ('{"type": "start", "face_id": "f1", "fps": 500}', "bad_field", "fps"),
    ('{"type": "start", "face_id": "f1", "sample_rate": 44100.5}', "bad_field", "sample_rate"),
    ('{"type": "start", "face_id": "f1", "sample_rate": 4000}', "bad_field", "8000 ... 48000"),
    ('{"type": "start", "face_id": "f1", "voice": "alice"}', "bad_field", "voice"),
    ('{"type": "start", "face_id": ""}', "bad_field", "face_id"),
    ('{"type": "start", "face_id": "f1", "fps": NaN}', "bad_field", "fps"),
    ('{"type": "text", "text": "..."}', "bad_field", "words"),
    ('{"type": "text", "text": 5}', "bad_field", "string"),
    ('{"type": "interrupt", "now": true}', "unknown_field", "now"),
])
def test_bad_messages_say_what_is_wrong(raw, code, words):
    with pytest.raises(ProtocolError) as e:
        parse_control(raw)
    assert e.value.code == code and words in e.value.message and e.value.close_code == CLOSE_POLICY
    assert "\n" not in e.value.message


def test_oversize_messages_close_with_1009():
    with pytest.raises(ProtocolError) as e:
        parse_control(json.dumps({"type": "text", "text": "word " * 1000}))
    assert e.value.code == "too_big" and e.value.close_code == CLOSE_TOO_BIG
    with pytest.raises(ProtocolError) as e:
        parse_control("{" + " " * 20000 + "}")
    assert e.value.close_code == CLOSE_TOO_BIG


def test_pcm_frames():
    pcm = (np.array([0, 16384, -32768, 32767], "<i2")).tobytes()
    chunk = pcm_audio(pcm, 16000, 32000)
    np.testing.assert_allclose(chunk.samples, [[0, 0.5, -1.0, 32767 / 32768]])
    assert chunk.sample_rate == 16000 and chunk.samples.dtype == np.float32
    for data, code in ((b"\x00" * 3, "bad_audio"), (b"", "bad_audio"), (b"\x00" * 32002, "too_big")):
        with pytest.raises(ProtocolError) as e:
            pcm_audio(data, 16000, 32000)
        assert e.value.code == code


def test_fmp4_info_reads_codecs_and_frames():
    """The MSE type and the frame count come from the boxes the live writer makes."""
    from facecast.media import Fmp4SegmentWriter
    from facecast.types import AudioChunk, VideoFrames

    w = Fmp4SegmentWriter(fps=25, width=64, height=64, audio_rate=48000, fragment_frames=5, preset="ultrafast")
    info, pieces = Fmp4Info(), []
    for k in range(4):
        frames = torch.full((5, 64, 64, 3), 40 * k, dtype=torch.uint8)
        audio = AudioChunk(np.zeros((1, 9600), np.float32), 48000, k * 0.2)
        pieces.append(w.write(VideoFrames(frames, 25.0, 5 * k), audio))
    pieces.append(w.close())
    counts = [info.feed(p) for p in pieces if p]
    assert info.mime.startswith('video/mp4; codecs="avc1.') and info.mime.endswith(', mp4a.40.2"')
    assert sum(counts) == info.frames == 20 and all(c % 5 == 0 for c in counts)
    with pytest.raises(ValueError):
        Fmp4Info().feed(b"\x00\x00\x00\x30moov")  # a box running past the data
