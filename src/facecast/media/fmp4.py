"""Fragmented MP4 for live streaming (Media Source Extensions), produced in memory.

Public API
----------
- ``Fmp4SegmentWriter(*, fps, width, height, audio_rate, audio_channels, ...)``: H.264 + AAC as an
  init segment, then moof+mdat fragments, each starting with a keyframe.
- ``fmp4_boxes(data) -> list[(type, size)]``: the top-level ISO-BMFF boxes of some bytes.
"""

from __future__ import annotations

import av
import numpy as np

from facecast.media.aac import AAC_SAMPLE_RATES, AacTrack, add_aac_stream
from facecast.media.convert import host_frames
from facecast.media.h264 import add_video_stream, check_format, video_frame
from facecast.options import EncodeOptions
from facecast.types import AudioChunk, I420Frames, VideoFrames

__all__ = ["Fmp4SegmentWriter", "fmp4_boxes"]


class _ByteSink:
    """A write-only, non-seekable file object: the muxer then writes strictly sequentially
    (init segment, then moof+mdat fragments) and we hand the bytes out as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts = []
        return out


class Fmp4SegmentWriter:
    """H.264 (yuv420p) + AAC as a fragmented MP4 produced in memory, piece by piece.

    The first bytes returned are the init segment (``ftyp`` + ``moov`` with no samples); after
    that only ``moof`` + ``mdat`` fragments. Every fragment starts with an IDR frame (a keyframe
    every ``fragment_frames`` frames and at the first frame), so a Media Source Extensions
    player can start at any fragment after the init segment. The concatenation of everything
    returned is a valid MP4 file (``movflags=frag_keyframe+empty_moov+default_base_moof``,
    no ``mfra`` trailer).

    fps, width, height: video format; frames are VideoFrames uint8 [n, height, width, 3] RGB
        (or I420Frames; CUDA RGB frames are converted on the GPU, as in Mp4Writer) with pts
        ``first_frame + k`` (1/fps units), increasing, starting anywhere >= 0.
    audio_rate, audio_channels: the AudioChunks' rate (one of AAC_SAMPLE_RATES) and the track's
        channels (1 or 2; chunks with other channel counts are mixed/duplicated); None = no
        audio track. Audio is placed by ``AudioChunk.start``; the track starts at 0 s and gaps
        are filled with silence, as in Mp4Writer.
    crf, preset, codec: as Mp4Writer; the encoder runs with ``tune=zerolatency`` (no B-frames,
        no look-ahead), so a frame's packet leaves the encoder as soon as it is encoded.

    Latency: the muxer closes a fragment when the next fragment's keyframe reaches it (FFmpeg's
    mov muxer cannot be told to flush from PyAV), so the bytes of fragment k come out of the
    ``write`` call that carries the first one or two frames of fragment k + 1, or of ``close``.
    ``write``/``close`` return b"" when no new bytes are ready.
    """

    def __init__(
        self,
        *,
        fps: float,
        width: int,
        height: int,
        audio_rate: int | None = 48000,
        audio_channels: int = 1,
        crf: int = 23,
        preset: str = "veryfast",
        codec: str = "libx264",
        fragment_frames: int = 12,
        threads: int = 0,
    ) -> None:
        check_format(width, height, fps)
        EncodeOptions(crf=crf, preset=preset, codec=codec)  # OptionError for a bad crf/preset/codec
        if fragment_frames < 1:
            raise ValueError(f"fragment_frames must be >= 1, got {fragment_frames}")
        if audio_rate is not None and audio_rate not in AAC_SAMPLE_RATES:
            raise ValueError(f"audio_rate {audio_rate} Hz is not an AAC rate; use one of {AAC_SAMPLE_RATES}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        self.fragment_frames = int(fragment_frames)
        self._closed = False
        self._first_pts: int | None = None
        self._next_pts = 0
        self._sink = _ByteSink()
        self._container = av.open(
            self._sink, mode="w", format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
                     # Hand packets to the muxer as they come (no cross-stream buffering) and
                     # push each fragment's bytes out at once.
                     "max_interleave_delta": "1", "flush_packets": "1"},
        )
        extra = {"tune": "zerolatency", "g": str(self.fragment_frames), "keyint_min": str(self.fragment_frames),
                 "sc_threshold": "0"} if codec == "libx264" else {}
        self._video = add_video_stream(self._container, self.fps, self.width, self.height, codec, crf, preset,
                                       threads, extra)
        self._audio = None
        if audio_rate is not None:
            a = add_aac_stream(self._container, audio_rate, audio_channels)
            self._audio = a
            self._track = AacTrack(a, audio_rate, audio_channels, self._container.mux)

    def write(self, video: VideoFrames | I420Frames | None = None, audio: AudioChunk | None = None) -> bytes:
        """Encode ``video`` (may be None or empty) and ``audio`` (may be None); return the bytes
        the muxer produced meanwhile (the init segment first, then whole fragments)."""
        if self._closed:
            raise ValueError("Fmp4SegmentWriter is already closed")
        if video is not None and video.num_frames:
            # one device -> host copy for the whole chunk
            data, fmt = host_frames(video, self.width, self.height, self.fps, self._next_pts, "Fmp4SegmentWriter")
            if audio is None or not audio.num_samples:
                self._encode_frames(data, fmt, video.first_frame)
                return self._sink.take()
            # Interleave: each frame, then the audio up to its end, so every fragment carries
            # the sound of its own frames rather than all audio piling into a later one.
            a0 = round(audio.start * audio.sample_rate)
            done = 0
            for k in range(video.num_frames):
                self._encode_frames(data[k:k + 1], fmt, video.first_frame + k)
                upto = round((video.first_frame + k + 1) / video.fps * audio.sample_rate) - a0
                upto = audio.num_samples if k == video.num_frames - 1 else min(max(upto, done), audio.num_samples)
                if upto > done:
                    self._write_audio(AudioChunk(audio.samples[:, done:upto], audio.sample_rate,
                                                 (a0 + done) / audio.sample_rate))
                    done = upto
        elif audio is not None and audio.num_samples:
            self._write_audio(audio)
        return self._sink.take()

    def close(self) -> bytes:
        """Flush the encoders, write the last fragment and return the remaining bytes."""
        if self._closed:
            return b""
        self._closed = True
        try:
            if self._audio is not None:
                self._track.flush()
            self._container.mux(self._video.encode(None))
        finally:
            self._container.close()
        return self._sink.take()

    def _encode_frames(self, data: np.ndarray, fmt: str, first_frame: int) -> None:
        """data: [n, ...] host frames in PyAV pixel format ``fmt``, pts first_frame + k."""
        if self._first_pts is None:
            self._first_pts = first_frame
        for k in range(data.shape[0]):
            pts = first_frame + k
            frame = video_frame(data[k], fmt, pts)
            if (pts - self._first_pts) % self.fragment_frames == 0:
                frame.pict_type = av.video.frame.PictureType.I  # IDR: a fragment starts here
            self._container.mux(self._video.encode(frame))
        self._next_pts = first_frame + data.shape[0]

    def _write_audio(self, chunk: AudioChunk) -> None:
        if self._audio is None:
            raise ValueError("this Fmp4SegmentWriter was created without audio (audio_rate=None)")
        if chunk.sample_rate != self.audio_rate:
            raise ValueError(f"AudioChunk at {chunk.sample_rate} Hz written to a {self.audio_rate} Hz Fmp4SegmentWriter")
        self._track.push(chunk)


def fmp4_boxes(data: bytes) -> list[tuple[str, int]]:
    """Top-level ISO-BMFF boxes of ``data`` as (type, size): e.g. [('ftyp', 28), ('moov', 1210),
    ('moof', 412), ('mdat', 5487), ...]. Stops at a truncated box."""
    out = []
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8].decode("latin-1")
        if size == 1 and i + 16 <= len(data):
            size = int.from_bytes(data[i + 8:i + 16], "big")
        if size < 8 or i + size > len(data):
            break
        out.append((kind, size))
        i += size
    return out
