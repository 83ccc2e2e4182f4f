"""Span-parallel drawing and encoding for many-core machines (``DubOptions.processes``).

On one process the 1080p job is bound by what must pass through it: every frame decoded,
converted to RGB and back, and handed to the encoders (the H100 box: RTF ~0.3 whatever the
threads). Here the main process keeps every sequential decision (the speech, the motion, which
of this person's mouths each frame shows: ``FootageSource.pick_mouths``) and never touches a
frame's pixels after the scan; worker processes take spans of the video in order:

    decode   the span's frames from the keyframe before it (``VideoSource.decoded_frames``),
             kept in yuv420p as decoded
    draw     each face's mouth box only, as RGB and back (``media.yuvroi``): the library
             picture placed and blended as on one process (``FootageMouth.place``/``paint``);
             every pixel outside the mask keeps its decoded value exactly
    encode   its own closed-GOP H.264 run (``h264.segment_context``, the output stream's
             settings), returned as packets (~20 KB a 1080p frame, not 3 MB of pixels)

and the main process muxes the runs in order with the sound (``Mp4Writer.write_encoded``).
The library's pictures reach the workers once, through one shared-memory block.

When it runs (``span_blockers``): a face track for the whole job (a track file, ``track=``, or
made by the same workers in pieces first: trackspans.py; the main process reads the face from
it instead of tracking), the video stored as
8-bit yuv420p (limited range), even sides, no rotation; the speech no longer than the video (no
back-and-forth loop); the footage mouth. Otherwise ``dub`` draws on one process, and says why.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .footage import FootageFrame
from .mouths import FootageMouth, MouthEntry
from .options import DubOptions

log = logging.getLogger(__name__)

__all__ = ["SpanRenderer", "SpanResult", "SpanTask", "draw_in_yuv", "next_span", "render_span", "span_blockers", "start_workers"]

SPAN_S = 2.0
"""Seconds of video a worker takes at a time: from 0.5 x this up to the next keyframe, where one
comes before a span would hold more than the job's frames / processes (the next span's decoder
then starts where it starts: no frame decoded twice), else this much (a decoder starting inside
a long group of pictures decodes from its keyframe: on a short 4K job with 6 s groups, spans of
whole groups left 5 of 15 workers idle and the job took 1.6x as long). Short spans keep the
last ones short, so the workers finish together."""


def span_blockers(src, track, processes: int, expect_frames: int | None, drawer=None) -> list[str]:
    """Why the job cannot draw in spans (empty: it can); ``drawer``: the job's mouth drawer."""
    import av

    why = []
    if processes < 2:
        return ["one process"]
    if drawer is not None and not isinstance(drawer, FootageMouth):
        why.append("the mesh mouth (the video shows too few usable mouths of its own, or --mouth mesh)")
    if track is None:
        why.append("no face track of the whole job (--text, or the tracked pieces followed different faces: give "
                   "--track FILE, made once by `facecast dub-track`)")
    if src.rotation:
        why.append(f"the video is rotated ({src.rotation} degrees)")
    W, H = src.size
    if W % 2 or H % 2:
        why.append(f"odd frame size {W}x{H}")
    if expect_frames is None or src.num_frames is None or expect_frames > src.num_frames:
        why.append("the speech may outlast the video (the back-and-forth loop)")
    with av.open(str(src.path)) as c:
        ctx = c.streams.video[0].codec_context
        if ctx.pix_fmt != "yuv420p" or ctx.color_range == 2:
            why.append(f"stored as {ctx.pix_fmt}{' full range' if ctx.color_range == 2 else ''}, not 8-bit yuv420p")
    return why


def keyframe_slots(src) -> np.ndarray:
    """int64 [k]: the grid slots (frame numbers) of the video's keyframes, from its packets
    (demuxed, not decoded)."""
    import av

    with av.open(str(src.path)) as c:
        vs = c.streams.video[0]
        origin = c.start_time / av.time_base if c.start_time is not None else 0.0
        tb = float(vs.time_base)
        ks = [round((p.pts * tb - origin) * src.fps) for p in c.demux(vs) if p.is_keyframe and p.pts is not None]
    return np.unique(np.array(ks, np.int64))


def source_colour(src) -> tuple[int, int, int, int]:
    """(colorspace, primaries, transfer, range) of the video's stream, unspecified ones as 2."""
    import av

    with av.open(str(src.path)) as c:
        ctx = c.streams.video[0].codec_context
        return tuple(int(getattr(ctx, k, 2) or 2) for k in ("colorspace", "color_primaries", "color_trc",
                                                            "color_range"))  # type: ignore[return-value]


@dataclass(frozen=True)
class PackedEntry:
    """A library picture inside the shared block: byte offset, shape; and its points."""

    offset: int
    shape: tuple[int, int, int]
    points: np.ndarray
    index: int


@dataclass(frozen=True)
class SpanTask:
    """One span for a worker: output frames [first, first + len(picks)) (the video's own frames:
    no loop), each face's points (NaN rows: none) and the picture it shows (-1: untouched)."""

    video: str
    first: int
    points: np.ndarray  # float32 [n, 478, 3]
    picks: np.ndarray  # int32 [n], keys into ``pictures``
    pictures: dict[int, PackedEntry]
    block: str  # the shared memory block's name
    options: DubOptions
    size: tuple[int, int]
    matrix: str
    settings: object  # media.h264.StreamSettings


@dataclass(frozen=True)
class SpanResult:
    """A drawn and encoded span: its packets (media.h264.EncodedPacket), frames, and the
    worker's seconds decoding, drawing and encoding."""

    first: int
    frames: int
    packets: list
    seconds: dict


@functools.lru_cache(maxsize=2)
def _attach(name: str):
    from multiprocessing import shared_memory

    return shared_memory.SharedMemory(name=name)


def render_span(task: SpanTask) -> SpanResult:
    """Runs in a worker: decode, draw and encode one span (see the module docstring)."""
    import av
    import cv2

    cv2.setNumThreads(1)  # one core per worker: the workers are the parallelism

    from ..media import open_video
    from ..media.h264 import export_packets, segment_context

    buf = _attach(task.block).buf
    pictures = {k: MouthEntry(np.ndarray(p.shape, np.uint8, buf, p.offset), p.points, np.zeros(2, np.float32),
                              np.zeros(2, np.float32), p.index, 0.0) for k, p in task.pictures.items()}
    drawer = FootageMouth(None, task.options, task.size)  # type: ignore[arg-type]  # place/paint only
    ctx = segment_context(task.settings)
    packets, spent = [], {"decode": 0.0, "draw": 0.0, "encode": 0.0}
    n = len(task.picks)
    frames = open_video(task.video).decoded_frames(task.first, n, threads=1)
    k = 0
    t = time.perf_counter()
    for frame in frames:
        arr = frame.to_ndarray()  # our own copy: decoded pictures are the decoder's references
        t1 = time.perf_counter()
        spent["decode"] += t1 - t
        e = pictures.get(int(task.picks[k]))
        if e is not None:
            draw_in_yuv(arr, task.size, drawer, e, task.points[k], task.matrix)
        t2 = time.perf_counter()
        spent["draw"] += t2 - t1
        vf = av.VideoFrame.from_numpy_buffer(arr, format="yuv420p")
        vf.pts = task.first + k
        packets.extend(ctx.encode(vf))
        k += 1
        t = time.perf_counter()
        spent["encode"] += t - t2
    if k != n:
        from ..errors import InputError

        raise InputError(f"{task.video}: the video ends at frame {task.first + k}, before frame {task.first + n} "
                         "that the job needs (truncated or damaged). Re-export or re-download it.")
    packets.extend(ctx.encode(None))
    spent["encode"] += time.perf_counter() - t
    return SpanResult(task.first, n, export_packets(packets), spent)


def draw_in_yuv(arr: np.ndarray, size: tuple[int, int], drawer: FootageMouth, entry: MouthEntry,
                points: np.ndarray, matrix: str) -> None:
    """Draw ``entry`` onto the face ``points`` of a yuv420p frame ``arr`` (uint8 [H * 3 / 2, W], as
    ``VideoFrame.to_ndarray`` gives it), in place: only the mask's box goes to RGB and back, and
    only the pixels the mask touches are written."""
    from ..media.yuvroi import Planes, even_box, rgb_into_roi, roi_to_rgb

    W, H = size
    pl = drawer.place(points, entry)
    if pl is None:
        return
    planes = Planes(arr[:H], arr[H:H + H // 4].reshape(H // 2, W // 2), arr[H + H // 4:].reshape(H // 2, W // 2))
    x0, y0, x1, y1 = pl.box
    box = even_box(pl.box, size)
    rgb = roi_to_rgb(planes, box, matrix)
    inner = (slice(y0 - box[1], y1 - box[1]), slice(x0 - box[0], x1 - box[0]))
    drawer.paint(pl, entry, rgb[inner], rgb[inner])
    where = np.zeros(rgb.shape[:2], bool)
    where[inner] = pl.alpha > 0
    rgb_into_roi(rgb, planes, box, matrix, where)


def next_span(start: int, have: int, keys: np.ndarray, span: int, longest: int) -> int | None:
    """Frames in the span starting at frame ``start`` (``have`` frames gathered; None: wait for
    more): up to the first keyframe (``keys``) after half a ``span`` and within ``longest``
    frames, else ``span``."""
    k = keys[(keys > start + span // 2) & (keys <= start + longest)]
    n = int(k[0]) - start if len(k) else span
    return n if have >= n else None


def start_workers(processes: int):
    """The span workers, started (and their imports under way) before the job's scan, so that
    their start-up overlaps it."""
    from ..workers import process_pool

    return process_pool(processes, single_threaded=True, warm_up=warm_up)


def warm_up() -> None:
    """A worker's imports (torch comes with facecast.types), done while the main process scans."""
    import importlib

    for name in ("av", "facecast.media.video", "facecast.media.yuvroi", "facecast.dubbing.mouths"):
        importlib.import_module(name)
    import cv2

    cv2.setNumThreads(1)


class SpanRenderer:
    """The main process's side: frames in output order (their faces from the track, their
    mouths picked by ``source``) gathered into spans, drawn and encoded by ``processes`` worker
    processes, results handed back in order (``results``). At most 2 x processes spans in
    flight (memory: packets and tasks only)."""

    def __init__(self, source, track, video, pool, processes: int, settings, matrix: str, total_frames: int):
        self.source, self.track, self.video = source, track, video
        self.settings, self.matrix = settings, matrix
        self.span = max(2, int(round(SPAN_S * source.fps)))
        self.longest = max(self.span, -(-int(total_frames) // processes))  # a span up to a keyframe
        self.keys = keyframe_slots(video)
        self.pool = pool  # from start_workers; shut down by close()
        try:
            self._block, self._packed = _pack_library(source.library.entries)
        except BaseException:
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise
        self.processes = processes
        self._queue: deque = deque()
        self._frames: list[FootageFrame] = []
        self._picks: list[int] = []
        self._first = 0
        self.spent = {"decode": 0.0, "draw": 0.0, "encode": 0.0}

    def add(self, drive) -> None:
        """The frames of ``drive`` (a MouthDrive, next in output order)."""
        step = self.source.step  # picked in the chunks one process draws in: the same mouths
        for a in range(0, drive.num_frames, step):
            frames = [self._frame(drive.first_frame + k) for k in range(a, min(a + step, drive.num_frames))]
            entries = self.source.pick_mouths(frames, drive.targets[a:a + step])
            self._frames.extend(frames)
            self._picks.extend(-1 if e is None else int(e.index) for e in entries)
        while (n := self._cut()) is not None:
            self._submit(n)

    def finish(self) -> None:
        if self._picks:
            self._submit(len(self._picks))

    def results(self, block: bool = False):
        """Finished spans in order (``block``: wait for all; else those done at the front, and
        whatever keeps at most 2 x processes in flight)."""
        while self._queue and (block or self._queue[0].done() or len(self._queue) > 2 * self.processes):
            res = self._queue.popleft().result()
            for k in self.spent:
                self.spent[k] += res.seconds[k]
            yield res

    def close(self) -> None:
        for fut in self._queue:
            fut.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._block.close()
        self._block.unlink()

    def _cut(self) -> int | None:
        return next_span(self._first, len(self._picks), self.keys, self.span, self.longest)

    def _frame(self, i: int) -> FootageFrame:
        t = self.track.frame(i) if i < self.track.num_frames else None
        pts = t.points if t is not None else None
        return FootageFrame(i, None, pts, bool(t.detected) if t is not None else False)  # type: ignore[arg-type]

    def _submit(self, n: int) -> None:
        frames, picks = self._frames[:n], self._picks[:n]
        del self._frames[:n], self._picks[:n]
        points = np.full((n, 478, 3), np.nan, np.float32)
        for k, f in enumerate(frames):
            if f.points is not None:
                points[k] = f.points
        used = {p: self._packed[p] for p in set(picks) if p >= 0}
        task = SpanTask(str(self.video.path), self._first, points, np.array(picks, np.int32), used, self._block.name,
                        self.source.options, self.source.size, self.matrix, self.settings)
        self._first += n
        self._queue.append(self.pool.submit(render_span, task))


def _pack_library(entries: list[MouthEntry]):
    """(shared memory block, {source index: PackedEntry}) holding every entry's picture."""
    from multiprocessing import shared_memory

    total = sum(e.image.nbytes for e in entries)
    block = shared_memory.SharedMemory(create=True, size=max(total, 1))
    packed, off = {}, 0
    for e in entries:
        img = np.ascontiguousarray(e.image)
        np.ndarray(img.shape, np.uint8, block.buf, off)[:] = img
        packed[int(e.index)] = PackedEntry(off, img.shape, e.points, int(e.index))
        off += img.nbytes
    return block, packed
