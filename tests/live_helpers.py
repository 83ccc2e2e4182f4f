"""Shared pieces of the live tests (tests/test_live_*.py): a small real portrait, real speech, a
cheap renderer, a stand-in voice, and the checks every stream's chunks must pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import media
from facecast.types import AudioChunk, MotionFrames, PhoneSpan, VideoFrames

FPS = 25.0
OPEN = 0.15  # jaw_open of a clearly open mouth (MotionOptions.jaw_scale 0.65: vowels reach ~0.3-0.6)


def portrait128():
    from facecast import face

    path = media("portrait/sam_512.jpg")
    image = face.load_image(path)
    return face.frame_portrait(image, face.find_face(image, source=str(path)), size=128, source=str(path))


def jfk_speech() -> AudioChunk:
    """2.4 s of real speech (JFK), as 44.1 kHz stereo: exercises resampling and down-mixing."""
    from facecast.audio import load_audio

    a = load_audio(media("audio/jfk_en.flac"), sample_rate=44100, mono=False)
    n = int(2.4 * 44100)
    return AudioChunk(np.ascontiguousarray(a.samples[:, :n]), 44100)


def still(portrait):
    """A renderer that returns the portrait itself: fast, and the right shape."""
    image = torch.from_numpy(portrait.image.copy())

    def render(motion: MotionFrames) -> VideoFrames:
        return VideoFrames(image[None].expand(motion.num_frames, -1, -1, -1).clone(), motion.fps, motion.first_frame)

    return render


def pieces(audio: AudioChunk, seconds: float):
    hop = max(1, round(seconds * audio.sample_rate))
    for i in range(0, audio.num_samples, hop):
        yield AudioChunk(audio.samples[:, i:i + hop], audio.sample_rate)


def check_contiguous(chunks, rate=48000, motion=True):
    """Frames tile the timeline from 0 (pts +1 each, no gaps/duplicates) and each chunk's audio
    covers exactly its frames' span."""
    nxt = 0
    for c in chunks:
        assert c.first_frame == nxt, f"gap or overlap at frame {nxt}: chunk starts at {c.first_frame}"
        if motion:
            assert c.motion.first_frame == c.first_frame and c.motion.num_frames == c.num_frames
        np.testing.assert_allclose(c.video.pts_seconds, (nxt + np.arange(c.num_frames)) / FPS)
        assert c.audio.sample_rate == rate
        assert c.audio.start == pytest.approx(c.first_frame / FPS)
        assert c.audio.num_samples == round((c.first_frame + c.num_frames) / FPS * rate) - round(c.first_frame / FPS * rate)
        nxt += c.num_frames
    return nxt


def run(sess, audio, hop_s):
    chunks = []
    for piece in pieces(audio, hop_s):
        sess.push_audio(piece)
        chunks += sess.poll()
    return chunks + sess.close()


class ToneVoice:
    """A stand-in voice: 0.3 s of a 220 Hz tone per word, one open vowel per word (Piper varies
    its timing from run to run, which would blur an exact check)."""

    sample_rate = 22050

    def synthesize(self, text):
        from facecast.voice import VoicedSentence

        words = text.split()
        n = int(0.3 * self.sample_rate)
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / self.sample_rate)).astype(np.float32)
        audio = np.tile(tone, len(words))[None]
        phones = tuple(PhoneSpan("AA", 0.3 * i + 0.05, 0.3 * i + 0.25) for i in range(len(words)))
        yield VoicedSentence(AudioChunk(audio, self.sample_rate, 0.0), phones, text)
