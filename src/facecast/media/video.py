"""Video stage: validated, streaming decode to RGB frames on a constant frame grid.

Public API
----------
- ``open_video(path, *, chunk_frames=25, max_side=None) -> VideoSource``: iterating yields
  ``VideoFrames`` (uint8 torch [n, H, W, 3] RGB) in chunks of ``chunk_frames``;
  ``VideoSource.frames(pool, ahead)`` yields them one at a time (no chunk copy), converted to RGB
  on a thread pool when given one.

Timeline: frame ``i`` is shown at ``i / fps`` seconds from the container's start time (the same
origin ``facecast.audio`` uses, so ``source.audio()`` stays in sync with the frames). ``fps`` is
the stream's average rate. Decoded frames are placed on that constant grid by their timestamps
(each grid slot shows the latest frame whose rounded time is <= the slot), so variable-frame-rate
files such as the 22.13 fps clip neither drift nor lose sync: a constant-rate file maps one to
one, a VFR file gets a frame repeated or dropped where its timing demands.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.stream import Disposition
from av.video.reformatter import Interpolation, VideoReformatter

from facecast.audio import AudioSource, check_media_file, open_audio, open_media
from facecast.errors import InputError
from facecast.types import VideoFrames

__all__ = ["VideoSource", "open_video"]

_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) with the longer side <= max_side, aspect kept, both even (H.264 4:2:0 needs even
    sizes). Never upscales; without max_side the source size is kept as is."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    # Round to the nearest pixel, then down to even, so the long side never exceeds max_side.
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


class VideoSource:
    """A validated video file, decoded lazily.

    Attributes: ``path``; ``fps`` (float, the stream's average rate); ``size`` (W, H) of the
    yielded frames (after ``max_side`` and display rotation); ``source_size`` (W, H) as stored;
    ``num_frames`` (frames on the grid, None if the file does not say its duration);
    ``duration`` (seconds or None); ``has_audio``; ``rotation`` (degrees counter-clockwise applied
    from the file's display matrix); ``chunk_frames``.

    Iterating reopens the file each time and yields VideoFrames with frames uint8 [n, H, W, 3]
    (CPU) and ``first_frame`` counting from 0; n = chunk_frames except for the last chunk. When
    ``num_frames`` is known exactly that many frames are yielded (the last frame is held if the
    stream ends early).
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float,
        size: tuple[int, int],
        source_size: tuple[int, int],
        num_frames: int | None,
        duration: float | None,
        has_audio: bool,
        rotation: int,
        chunk_frames: int,
        stream_pos: int,
    ) -> None:
        self.path = path
        self.fps = fps
        self.size = size
        self.source_size = source_size
        self.num_frames = num_frames
        self.duration = duration
        self.rotation = rotation
        self.chunk_frames = chunk_frames
        self._has_audio = has_audio
        self._stream_pos = stream_pos  # index into container.streams.video
        self.decoded_until: int | None = None
        """Set when an iteration's decoder runs out: the grid slot where it did. Slots from there
        to ``num_frames`` hold the last decoded frame (a truncated file ends early; `dub` checks)."""

    @property
    def has_audio(self) -> bool:
        return self._has_audio

    def audio(self, *, chunk_seconds: float = 1.0) -> AudioSource:
        """The file's sound track as an AudioSource (InputError if it has none)."""
        return open_audio(self.path, chunk_seconds=chunk_seconds)

    def __repr__(self) -> str:
        w, h = self.size
        return f"VideoSource({str(self.path)!r}, {w}x{h} @ {self.fps:.3f} fps, {self.num_frames} frames)"

    def __iter__(self) -> Iterator[VideoFrames]:
        batch: list[np.ndarray] = []
        first = 0
        for rgb in self.frames():
            batch.append(rgb)
            if len(batch) == self.chunk_frames:
                yield VideoFrames(_tensor(np.stack(batch)), self.fps, first)
                first += len(batch)
                batch = []
        if batch:
            yield VideoFrames(_tensor(np.stack(batch)), self.fps, first)

    def frames(self, pool: Executor | None = None, ahead: int = 8) -> Iterator[np.ndarray]:
        """uint8 [H, W, 3] RGB per grid slot, in order, one at a time (no chunk is stacked: each
        array may be a strided view of its own decoded picture, read-only by convention; a slot
        that repeats a frame yields the same array). With ``pool`` (a thread pool), the
        conversions to RGB (swscale: ~3-5 ms a 1080p frame, the GIL released) run on its
        threads, up to ``ahead`` frames (about 2 per thread is enough) ahead of the consumer, while this
        thread decodes; errors still surface at the frame where they happen."""
        if pool is None:
            yield from self._rgb_of(self._grid_slots())
            return
        local = threading.local()

        def convert_here(frame: av.VideoFrame) -> np.ndarray:
            r = getattr(local, "reformatter", None)
            if r is None:  # one swscale context per thread (a context is not thread-safe)
                r = local.reformatter = VideoReformatter()
            return self._to_rgb(r, frame)

        depth = max(1, int(ahead))
        slots = self._grid_slots()
        queue: deque = deque()
        error: BaseException | None = None
        last_frame, last_future = None, None
        try:
            while True:
                while error is None and len(queue) < depth:
                    try:
                        frame = next(slots)
                    except StopIteration:
                        break
                    except Exception as exc:  # raised once the frames before it are handed out
                        error = exc
                        break
                    if frame is not last_frame:
                        last_frame, last_future = frame, pool.submit(convert_here, frame)
                    queue.append(last_future)
                if not queue:
                    if error is not None:
                        raise error
                    return
                yield queue.popleft().result()
        finally:
            slots.close()
            for fut in queue:
                fut.cancel()

    def decoded_frames(self, first: int, count: int, threads: int = 0) -> Iterator[av.VideoFrame]:
        """The decoded frames (as stored: no rotation, scaling or RGB) of grid slots
        [first, first + count), in order, starting from the keyframe before ``first`` (a seek,
        not a decode from the start). ``threads``: the decoder's (0: FFmpeg's choice)."""
        slots = self._grid_slots(first, threads)
        try:
            for _ in range(count):
                frame = next(slots, None)
                if frame is None:
                    return
                yield frame
        finally:
            slots.close()

    def rgb_frames(self, first: int, count: int, threads: int = 0) -> Iterator[np.ndarray]:
        """uint8 [H, W, 3] RGB of grid slots [first, first + count), as ``frames`` gives them
        (rotated, scaled), decoded from the keyframe before ``first`` (``decoded_frames``)."""
        yield from self._rgb_of(self.decoded_frames(first, count, threads))

    def _rgb_of(self, slots: Iterator[av.VideoFrame]) -> Iterator[np.ndarray]:
        """RGB of each slot's frame, on this thread (a repeated slot reuses the converted array)."""
        reformatter = VideoReformatter()  # one for the stream: its swscale context is reused
        last: tuple[av.VideoFrame | None, np.ndarray | None] = (None, None)
        for frame in slots:
            if last[0] is not frame:
                last = (frame, self._to_rgb(reformatter, frame))
            yield last[1]

    def _grid_slots(self, first: int = 0, threads: int = 0) -> Iterator[av.VideoFrame]:
        """The decoded frame shown in each grid slot from ``first`` on, in order (the same object
        for a repeated slot)."""
        container = open_media(self.path, what="video")
        try:
            stream = container.streams.video[self._stream_pos]
            stream.thread_type = "AUTO"  # frame+slice threads: ~2x on HEVC 1080p
            if threads:
                stream.codec_context.thread_count = threads
            origin = container.start_time / av.time_base if container.start_time is not None else 0.0
            total = self.num_frames
            slot_next = first  # next grid slot to emit
            held: av.VideoFrame | None = None  # latest frame with slot <= slot_next
            last_t: float | None = None
            step = 1.0 / self.fps
            decoded = 0
            try:
                for frame in self._decode_from(container, stream, origin, first):
                    decoded += 1
                    if frame.time is not None:
                        t = float(frame.time)
                    else:  # no timestamp: assume it follows the previous frame
                        t = last_t + step if last_t is not None else origin
                    last_t = t
                    slot = round((t - origin) * self.fps)
                    while slot_next < slot and (total is None or slot_next < total):
                        # Slots before the first frame (video starting after the audio) show it.
                        yield held if held is not None else frame
                        slot_next += 1
                    held = frame
                    if total is not None and slot_next >= total:
                        break
            except av.error.FFmpegError as exc:
                raise InputError(
                    f"{self.path}: video is damaged or truncated at frame {decoded} "
                    f"(FFmpeg: {getattr(exc, 'strerror', None) or exc}). Re-export or re-download the file."
                ) from exc
            self.decoded_until = slot_next + (held is not None)
            if held is None:
                return
            end = total if total is not None else slot_next + 1
            while slot_next < end:
                yield held
                slot_next += 1
        finally:
            container.close()

    def _decode_from(self, container, stream, origin: float, first: int) -> Iterator[av.VideoFrame]:
        """The stream's frames in display order from the last keyframe shown at or before grid
        slot ``first`` (frames before the slot only set the held frame). The seek aims at the
        slot itself, so a span that starts on a keyframe decodes from it, not from the keyframe
        before (a whole group of pictures more). A demuxer that lands after the slot (one that
        seeks by decoding time, with B-frames) is caught at the first frame and sent 1, 2, 4 ...
        seconds further back, at last to the file's start."""
        if not first:
            yield from container.decode(stream)
            return
        back = 0.49  # frames after the slot's start: its own keyframe counts (slot = round(t * fps))
        for attempt in itertools.count():
            at_start = first + back <= 0  # the last resort: timestamp 0, the file's start (below origin)
            target = 0 if at_start else int(round((origin + (first + back) / self.fps) / stream.time_base))
            try:
                container.seek(target, stream=stream, backward=True)
            except av.error.FFmpegError:
                if attempt:
                    raise
                yield from container.decode(stream)  # a demuxer that cannot seek; nothing read yet
                return
            frames = container.decode(stream)
            head = next(frames, None)
            # Late: past the slot, or at the end (a demuxer that seeks by bytes, e.g. MPEG-TS).
            late = head is None or (head.time is not None and round((float(head.time) - origin) * self.fps) > first)
            if not late or at_start:
                if head is not None:
                    yield head
                    yield from frames
                return
            back -= self.fps * 2 ** attempt  # 1, 2, 4 ... s further back

    def _to_rgb(self, reformatter: VideoReformatter, frame: av.VideoFrame) -> np.ndarray:
        w, h = self.size if self.rotation % 180 == 0 else self.size[::-1]
        scaled = (w, h) != (frame.width, frame.height)
        rgb = reformatter.reformat(
            frame,
            width=w,
            height=h,
            format="rgb24",
            # AREA averages when shrinking (no aliasing on hair/teeth); the source's own colour
            # matrix (BT.709 for HD, BT.601 when untagged) is taken from the frame.
            interpolation=Interpolation.AREA if scaled else None,
        ).to_ndarray()
        if self.rotation:
            rgb = np.rot90(rgb, k=self.rotation // 90)
        # Possibly a strided view (swscale pads lines); the np.stack in __iter__ makes the one
        # copy. An extra ascontiguousarray here halves 1080p throughput (page faults).
        return rgb


def _tensor(frames: np.ndarray):
    import torch  # here, not at import: a span worker decodes without loading torch

    return torch.from_numpy(frames)


def open_video(path: str | Path, *, chunk_frames: int = 25, max_side: int | None = None) -> VideoSource:
    """Open and validate a video file for streaming decode.

    max_side: downscale on decode so the longer side is at most this (aspect kept, even sizes).
    Checks (InputError naming the file): missing, directory, empty, not decodable, a still
    image, no video stream, unknown frame rate. Decodes the first frame to be sure it decodes.
    """
    if chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be > 0, got {chunk_frames}")
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be >= 2, got {max_side}")
    p = check_media_file(path, what="video")
    container = open_media(p, what="video")
    try:
        if container.format.name in _IMAGE_FORMATS:
            raise InputError(f"{p}: is a still image, not a video. Give a video file (MP4, MOV, MKV, WebM).")
        # Cover art in music files shows up as a one-frame "video" stream: not a video.
        positions = [
            i for i, s in enumerate(container.streams.video) if not (s.disposition & Disposition.attached_pic)
        ]
        if not positions:
            what = "it is audio only" if container.streams.audio else "it has no video track"
            raise InputError(f"{p}: has no video stream ({what}). Give a video file (MP4, MOV, MKV, WebM).")
        pos = positions[0]
        stream = container.streams.video[pos]
        rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise InputError(f"{p}: video frame rate is unknown. Re-encode it with a constant frame rate.")
        fps = float(rate)
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        end: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            start = stream.start_time if stream.start_time is not None else 0
            end = float((start + stream.duration) * stream.time_base) - origin
        elif container.duration is not None:
            end = container.duration / av.time_base
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{p}: video stream cannot be decoded (FFmpeg: {getattr(exc, 'strerror', None) or exc}). "
                "Re-encode it as H.264 MP4."
            ) from exc
        if first is None:
            raise InputError(f"{p}: video stream holds no decodable frames. Re-encode it as H.264 MP4.")
        source_size = (first.width, first.height)
        # Phone clips store landscape pixels plus a display rotation; honour it like players do.
        rotation = int(round((getattr(first, "rotation", 0) or 0) / 90.0)) * 90 % 360
        w, h = _scaled_size(first.width, first.height, max_side)
        size = (h, w) if rotation % 180 else (w, h)
        has_audio = bool(container.streams.audio)
    finally:
        container.close()
    num_frames = max(1, round(end * fps)) if end is not None and end > 0 else None
    return VideoSource(
        p,
        fps=fps,
        size=size,
        source_size=source_size,
        num_frames=num_frames,
        duration=end if end is not None and end > 0 else None,
        has_audio=has_audio,
        rotation=rotation,
        chunk_frames=chunk_frames,
        stream_pos=pos,
    )
