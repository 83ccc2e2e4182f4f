"""H.264 video streams as both MP4 writers make them: quality and speed options, the BT.601
colour tags, the frame-format check, and segment encoders that encode one stream in parallel.

Public API (for ``facecast.media.mp4`` and ``facecast.media.fmp4``)
------------------------------------------------------------------
- ``check_format(width, height, fps)``: ValueError unless yuv420p H.264 can carry that format.
- ``add_video_stream(container, fps, width, height, codec, crf, preset, threads, extra)``.
- ``quality_options(codec, crf, preset) -> dict``, ``as_fraction(fps) -> Fraction``.
- ``SegmentEncoders``: closed-GOP segments encoded by a thread pool, muxed back in order.
- ``StreamSettings`` + ``segment_context(settings)``: a standalone encoder whose packets fit a
  stream (another thread's or another process's); ``EncodedPacket``/``export_packets``: its
  packets as plain data (they cross process boundaries).

Speed (2 shared CPU cores, 512x512 @ 25 fps real talking-head footage, CRF 23, best of 5):
ultrafast ~3 ms/frame (700 KiB per 5 s), superfast ~5.5 (340 KiB), veryfast ~5-7 (200 KiB),
faster ~8-9 (250 KiB); thread settings change little on 2 cores. veryfast is the default: files
~40 % smaller than superfast at the same PSNR (~39-40 dB), still >5x faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from facecast.errors import OutputError

__all__ = ["SEGMENT_BUFFER_BYTES", "BT601_TAGS", "EncodedPacket", "SegmentEncoders", "StreamSettings",
           "add_video_stream", "as_fraction", "check_format", "export_packets", "quality_options", "segment_context",
           "segment_length", "video_frame"]

BT601_TAGS = (6, 6, 6, 1)
"""(colorspace, primaries, transfer, range) of our RGB encoded by swscale: BT.601 (SMPTE 170M),
limited range."""

SEGMENT_BUFFER_BYTES = 1 << 30
"""Most bytes of RGB frames the segment encoders hold at once (``workers + 1`` segments): 1 GiB."""
MIN_SEGMENT_FRAMES = 8


def as_fraction(fps: float) -> Fraction:
    # 1001-based NTSC rates and odd rates such as 1350/61 (22.13 fps) survive exactly.
    return Fraction(fps).limit_denominator(10_000)


def quality_options(codec: str, crf: int, preset: str) -> dict:
    """Encoder options for quality and speed (only the x264/x265 wrappers take crf/preset)."""
    return {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}


def add_video_stream(container, fps: float, width: int, height: int, codec: str, crf: int, preset: str,
                     threads: int, extra: dict | None = None, colour: tuple[int, int, int, int] = BT601_TAGS
                     ) -> av.VideoStream:
    """An H.264/H.265 yuv420p stream tagged BT.601 limited range. The encoder converts our RGB
    with swscale's default BT.601 matrix; say so in the stream, or players guess BT.709 for HD
    sizes and shift the colours. ``extra``: more encoder options (e.g. zerolatency, GOP).
    ``colour``: other tags (colorspace, primaries, transfer, range) for yuv420p frames passed
    through from a source as they were decoded."""
    rate = as_fraction(fps)
    options = quality_options(codec, crf, preset)
    options.update(extra or {})
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    ctx = stream.codec_context
    ctx.time_base = 1 / rate
    ctx.thread_count = threads
    ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = colour
    return stream


@dataclass(frozen=True)
class StreamSettings:
    """What a standalone encoder needs to make packets that fit an output stream (the same
    SPS/PPS): codec, quality, frame rate and size, colour tags (as ``add_video_stream``), the
    stream's codec flags (global header, as the MP4 muxer set them) and its own thread count."""

    codec: str
    crf: int
    preset: str
    fps: float
    width: int
    height: int
    colour: tuple[int, int, int, int]
    flags: int
    threads: int = 1


def segment_context(s: StreamSettings) -> av.CodecContext:
    """A fresh encoder with the settings ``s`` (the first frame it gets becomes an IDR frame)."""
    ctx = av.CodecContext.create(s.codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = s.width, s.height, "yuv420p"
    ctx.time_base, ctx.framerate = 1 / as_fraction(s.fps), as_fraction(s.fps)
    ctx.thread_count = s.threads
    ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = s.colour
    ctx.flags = s.flags
    ctx.options = quality_options(s.codec, s.crf, s.preset)
    return ctx


@dataclass(frozen=True)
class EncodedPacket:
    """An encoded video packet as plain data: bytes, timestamps in 1/fps, whether it is a keyframe."""

    data: bytes
    pts: int
    dts: int
    keyframe: bool


def export_packets(packets) -> list[EncodedPacket]:
    return [EncodedPacket(bytes(p), int(p.pts), int(p.dts), bool(p.is_keyframe)) for p in packets]


def check_format(width: int, height: int, fps: float) -> None:
    """H.264 yuv420p needs positive, even frame sides and a positive rate."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even for yuv420p, got {width}x{height}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def video_frame(data: np.ndarray, fmt: str, pts: int) -> av.VideoFrame:
    """A frame for the encoder at ``pts``. RGB frames are wrapped, not copied: the encoder's
    swscale reads them inside ``encode()`` (outside the GIL) and makes the yuv420p frame the
    codec keeps. ``from_ndarray``'s copy held the GIL for ~3 ms a 1080p frame (the H100 box:
    the largest single cost of 8 segment encoders feeding on one process). Other formats, and
    arrays that are not C-contiguous, are copied as before."""
    if fmt == "rgb24" and data.flags.c_contiguous:
        frame = av.VideoFrame.from_numpy_buffer(data, format="rgb24")
    else:
        frame = av.VideoFrame.from_ndarray(data, format=fmt)
    frame.pts = pts
    return frame


def segment_length(requested: int, workers: int, width: int, height: int) -> int:
    """Frames per segment: ``requested``, shortened where ``workers + 1`` segments of RGB frames
    would pass SEGMENT_BUFFER_BYTES (shortened never under MIN_SEGMENT_FRAMES). Eight encoders holding 2 s
    segments kept ~2.8 GB of 1080p frames and ~11 GB at 4K (the H100 box: RSS 6 and 19 GB);
    shorter segments cost a keyframe more often (a slightly larger file at the same CRF)."""
    cap = SEGMENT_BUFFER_BYTES // max(1, (workers + 1) * width * height * 3)
    return int(requested) if requested <= cap else max(MIN_SEGMENT_FRAMES, int(cap))


class SegmentEncoders:
    """H.264 encoded in independent segments by a pool of threads, muxed back in order.

    One libx264 encoder tops out at a few hundred 512x512 frames/s (the H100 box: ~300-420),
    while a GPU renders thousands, so an offline job is encode-bound. Here every ``segment``
    consecutive frames get their own encoder: each segment starts with an IDR frame and
    references nothing outside itself (a closed GOP), all encoders have the same settings, so
    their SPS/PPS equal the output stream's (its extradata) and the segments' packets, in order,
    form one valid stream. PyAV releases the GIL inside swscale and libx264, so the threads run
    in parallel; the Python part of each frame (hand-over, frame and packet objects) does not.
    On the H100 box 8-16 threads stop at ~1,250 frames/s at 512x512 from RGB and ~1,650 from
    yuv420p made on the GPU (``to_i420``), on ~7 of its 16 cores; a busy Python thread beside
    them costs far more (GIL hand-over waits; worker processes fed through shared memory were
    slower still: docs/benchmarks.md). Memory
    is bounded: at most ``workers + 1`` segments of frames are held (the one being filled and
    those being encoded).

    Timestamps stay exact: frames keep their pts, and a segment's first decode timestamp (its
    pts minus the B-frame delay, the same in every segment) follows the previous segment's last.
    """

    def __init__(self, make_context, stream, workers: int, segment: int, mux):
        from concurrent.futures import ThreadPoolExecutor

        self._make_context, self._stream, self._mux = make_context, stream, mux
        self._segment = max(1, int(segment))
        self._workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="facecast-h264")
        self._pending: list[tuple[np.ndarray, int, str]] = []  # frame, its pts, its pixel format
        self._queued: list = []  # futures of segments' packet lists, in stream order
        self._last_dts: int | None = None

    def push(self, data: np.ndarray, fmt: str, first_pts: int) -> None:
        """data: frames [n, ...] in PyAV pixel format ``fmt`` (rgb24 or yuv420p)."""
        for k in range(data.shape[0]):
            self._pending.append((data[k], first_pts + k, fmt))
            if len(self._pending) >= self._segment:
                self._submit()
        self._drain(block=False)

    def flush(self) -> None:
        if self._pending:
            self._submit()
        self._drain(block=True)
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        for fut in self._queued:
            fut.cancel()
        self._queued.clear()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        frames, self._pending = self._pending, []
        self._queued.append(self._pool.submit(self._encode, frames))
        # Back-pressure: never more segments in flight than workers (plus the one filling).
        while len(self._queued) > self._workers:
            self._mux_next()

    def _drain(self, block: bool) -> None:
        while self._queued and (block or self._queued[0].done()):
            self._mux_next()

    def _mux_next(self) -> None:
        packets = self._queued.pop(0).result()
        for packet in packets:
            if self._last_dts is not None and packet.dts is not None and packet.dts <= self._last_dts:
                raise OutputError(f"segment encoders produced decode timestamps out of order "
                                  f"({packet.dts} after {self._last_dts}); encode with workers=1")
            self._last_dts = packet.dts if packet.dts is not None else self._last_dts
            packet.stream = self._stream
        self._mux(packets)

    def _encode(self, frames: list[tuple[np.ndarray, int, str]]) -> list:
        """Runs on a pool thread: one fresh encoder for the segment, flushed at its end."""
        ctx = self._make_context()
        packets = []
        for data, pts, fmt in frames:
            packets.extend(ctx.encode(video_frame(data, fmt, pts)))
        packets.extend(ctx.encode(None))
        return packets


