"""The AAC sound track both MP4 writers carry.

Public API (for ``facecast.media.mp4`` and ``facecast.media.fmp4``)
------------------------------------------------------------------
- ``AAC_SAMPLE_RATES``: the rates an AAC track can carry.
- ``add_aac_stream(container, rate, channels) -> av.AudioStream``: a mono/stereo AAC stream.
- ``AacTrack``: places AudioChunks on the track's timeline and cuts them into AAC frames.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from facecast.types import AudioChunk

__all__ = ["AAC_SAMPLE_RATES", "AacTrack", "add_aac_stream"]

# Rates the MPEG-4 AAC sampling-frequency table (and FFmpeg's aac encoder) accept.
AAC_SAMPLE_RATES: tuple[int, ...] = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)
_AAC_FRAME = 1024  # samples per AAC frame: the encoder takes exactly this many (last one may be short)
_AAC_BITRATE_PER_CHANNEL = 64_000  # plenty for speech; 128 kb/s stereo


def add_aac_stream(container, rate: int, channels: int) -> av.AudioStream:
    """An AAC stream at ``rate`` (one of AAC_SAMPLE_RATES) with 1 or 2 channels, planar float
    input, 64 kb/s per channel."""
    stream = container.add_stream("aac", rate=rate)
    ctx = stream.codec_context
    ctx.layout = "mono" if channels == 1 else "stereo"
    ctx.format = "fltp"
    ctx.bit_rate = _AAC_BITRATE_PER_CHANNEL * channels
    ctx.time_base = Fraction(1, rate)
    return stream


class AacTrack:
    """An AAC stream fed with AudioChunks placed on the timeline by their ``start``: converts
    mono/stereo to the track's channels, fills gaps with silence (a chunk keeps its place),
    rejects overlaps, cuts 1024-sample AAC frames and stamps their pts. Shared by Mp4Writer and
    Fmp4SegmentWriter. ``mux`` sends packets to the container."""

    def __init__(self, stream, rate: int, channels: int, mux):
        self.stream, self.rate, self.channels, self._mux = stream, rate, channels, mux
        self._layout = "mono" if channels == 1 else "stereo"
        self._buf = np.zeros((channels, 0), np.float32)  # < 1 AAC frame
        self._next = 0  # timeline sample index of _buf[:, 0]

    def push(self, chunk: AudioChunk) -> None:
        if chunk.num_samples == 0:
            return
        samples = chunk.samples.astype(np.float32, copy=False)
        if samples.shape[0] != self.channels:  # mono <-> stereo: average down, duplicate up
            mono = samples.mean(axis=0, keepdims=True)
            samples = mono if self.channels == 1 else np.repeat(mono, 2, axis=0)
        start = round(chunk.start * self.rate)
        at = self._next + self._buf.shape[1]  # where the buffer ends on the timeline
        if start > at + 1:
            samples = np.concatenate([np.zeros((self.channels, start - at), np.float32), samples], axis=1)
        elif start < at - 1:
            raise ValueError(f"audio chunk at {chunk.start:.3f} s overlaps audio already written up to "
                             f"{at / self.rate:.3f} s")
        buf = np.concatenate([self._buf, samples], axis=1)
        full = (buf.shape[1] // _AAC_FRAME) * _AAC_FRAME
        for i in range(0, full, _AAC_FRAME):
            self._encode(buf[:, i:i + _AAC_FRAME])
        self._buf = buf[:, full:]

    def flush(self) -> None:
        """Encode the remainder (the one short frame AAC allows: the last) and drain the encoder."""
        if self._buf.shape[1]:
            self._encode(self._buf)
            self._buf = self._buf[:, :0]
        self._mux(self.stream.encode(None))

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._layout)
        frame.sample_rate = self.rate
        frame.pts = self._next
        frame.time_base = Fraction(1, self.rate)
        self._next += samples.shape[1]
        self._mux(self.stream.encode(frame))
