"""FootageSource: a FaceSource over tracked footage. The per-frame base is the video's own frame
with its tracked face; the motion model (calibrated to this speaker) says what the mouth should
be, and the mouth is drawn into the lower face only, through a feathered mask.

Mouth drawers (``DubOptions.mouth``):
    footage  the person's own mouths from this video (mouths.MouthLibrary): photoreal lips,
             teeth and tongue, chosen per frame to match the target shape, with temporal
             smoothness, aligned to the frame and colour-matched
    mesh     the portrait renderer's landmark warp over the frame (render.MeshRenderer with
             per-frame bases), the mouth interior painted; relative to the frame's own mouth
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..errors import NoFaceError
from ..motion import MotionModel
from .options import DubOptions
from ..segments import Segment
from ..timing import Timings
from ..types import MOTION_INDEX, MotionFrames, Speech, VideoFrames
from .buffers import ChunkArrays
from .calibrate import Calibration, SpeakerStats, default_calibration, mouth_shape
from .footage import FootageFrame, FootageReader, Timeline, head_speed
from .cues import PHONE_GROUPS, phone_coverage
from .learned import LearnedFit, LearnedMouth, OwnSpeech
from .track import StreamTracker

log = logging.getLogger(__name__)

SCAN_PAST_S = 10.0
"""The scan reads at most this many seconds of video past the job's last frame."""


def scan_frames(options: DubOptions, fps: float, expect_frames: int | None) -> int:
    """Frames FootageSource scans ahead: ``scan_s`` of video, but not more than SCAN_PAST_S past
    what the job shows (``expect_frames``; None: unknown), so a short dub of a long video does
    not scan far past its end."""
    scan = int(round(options.scan_s * fps))
    if expect_frames is not None:
        scan = min(scan, expect_frames + int(round(SCAN_PAST_S * fps)))
    return scan


@dataclass(frozen=True)
class MouthDrive:
    """What FootageSource.animate makes of a segment: the phone-driven motion (the mesh path
    draws it) and the mouth each frame should show, ``targets`` float32 [n, 2] (lip gap, width)
    in IOD, from the calibrated phone model or the learned fusion."""

    motion: MotionFrames
    targets: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    @property
    def first_frame(self) -> int:
        return self.motion.first_frame

    @property
    def fps(self) -> float:
        return self.motion.fps

CHUNK_BYTES = 100 * 2**20
"""A rendered chunk stays under this many bytes of frames (fewer frames per chunk at 4K)."""


@dataclass
class DrawJob:
    """A chunk being drawn: ``out`` uint8 [n, H, W, 3] (complete once ``futures`` are done; none
    when it was drawn in place), its first frame."""

    out: np.ndarray
    first: int
    futures: list


@dataclass
class DubReport:
    """What a dub did: output frames, how many had their mouth redrawn, how many passed through
    untouched (no face), how many came from the back-and-forth loop, shot cuts, the mouth drawer
    and the calibration."""

    video: str = ""
    size: tuple[int, int] = (0, 0)
    fps: float = 0.0
    frames: int = 0
    dubbed: int = 0
    no_face: int = 0
    looped: int = 0
    kept: int = 0
    cuts: int = 0
    mouth: str = ""
    library: int = 0
    calibration: Calibration | None = None
    learned: LearnedFit | None = None
    notes: list[str] = field(default_factory=list)
    trace: dict[str, list] | None = None
    """Set to {} before the job to keep, per output frame, the asked lip gap ("asked", NaN
    where no face) and the gap of the mouth picture drawn ("drawn", NaN on the mesh path):
    the eval's lip-sync links. Off by default (it grows with the length)."""

    def text(self) -> str:
        s = (f"{self.frames} frames: {self.dubbed} dubbed, {self.no_face} without a face passed through untouched"
             f", mouth from {self.mouth}")
        if self.mouth == "footage":
            s += f" ({self.library} mouths of this video)"
        if self.looped:
            s += f", {self.looped} from the back-and-forth loop"
        if self.kept:
            s += f", {self.kept} kept after the speech (--keep-length)"
        if self.cuts:
            s += f", {self.cuts} shot cuts"
        if self.learned is not None:
            s += f"; {self.learned.text()}"
        return s


class FootageSource:
    """Tracked footage as a FaceSource (see the module docstring). ``expect(frames)`` tells it
    how many output frames the job needs (None: unknown, e.g. text not yet spoken), so it knows
    whether the video must be extended by the back-and-forth loop. ``track``: the video's
    precomputed face track (dubbing.trackfile.VideoTrack, checked against the video) instead of
    tracking it here."""

    needs_speech = True

    def __init__(self, video, options: DubOptions, *, expect_frames: int | None, timings: Timings | None = None,
                 report: DubReport | None = None, track=None):
        timings = timings if timings is not None else Timings()
        self.video = video
        self.options = options
        self.fps = video.fps
        W, H = video.size
        self.size = (W - W % 2, H - H % 2)
        self.name = str(video.path)
        self.report = report if report is not None else DubReport()
        self.report.video, self.report.size, self.report.fps = self.name, self.size, self.fps
        if self.size != (W, H):
            self.report.notes.append(f"{W}x{H} has an odd side; H.264 needs even sides: the last row/column is cut")
        self.stats = SpeakerStats()
        self.motion = MotionModel(options.motion)
        self._total = expect_frames
        n = video.num_frames
        loop = int(round(options.loop_max_s * self.fps))
        need_ring = expect_frames is None or n is None or expect_frames > n - self.fps
        if track is not None:  # a precomputed trackfile.VideoTrack: no mediapipe
            from .trackfile import ReplayTracker

            tracker = ReplayTracker(track)
        else:
            tracker = StreamTracker(self.fps, face_index=options.face_index, max_gap_s=options.max_gap_s,
                                    source=self.name)
        self.draw_workers = options.draw_threads()
        self.pool = None
        if self.draw_workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.draw_workers, thread_name_prefix="facecast-draw")
        self.reader = FootageReader(video, tracker, observe=self._observe, ring_slots=loop if need_ring else 0,
                                    crop=self.size, timings=timings, pool=self.pool, ahead=2 * self.draw_workers)
        self.timeline = Timeline(self.fps, loop)
        self.step = max(1, min(options.chunk_frames, CHUNK_BYTES // (self.size[0] * self.size[1] * 3)))
        enc = options.encode  # the segment encoders hold (workers + 1) segments of frames
        held = math.ceil((enc.workers + 1) * enc.segment_s * self.fps / self.step) if enc.workers > 1 else 0
        self._arrays = ChunkArrays(self.size, self.step, 6 + held)
        self._out = 0  # next output frame
        self._last: FootageFrame | None = None
        self._drawer = None
        self.library = None
        if options.mouth != "mesh":
            from .mouths import MouthLibrary

            self.library = MouthLibrary(options, self.size)
        self.calibration: Calibration | None = None
        self.learned: LearnedMouth | None = None
        self._ahead_motion: MotionModel | None = None
        self.timings = timings
        self.reader.scan(scan_frames(options, self.fps, expect_frames))  # the scanned frames are decoded twice
        if self.reader.tracker.detected == 0 and self.reader.ended:
            raise NoFaceError(f"{self.name}: no face found in any frame. dub needs a video where the speaker's face "
                              "is visible (frontal, at least ~64 pixels wide).")

    # -- what the footage shows -----------------------------------------------------------------

    def _observe(self, f: FootageFrame) -> None:
        """Every source frame once, as it is tracked: the speaker statistics and the library."""
        if f.points is None or not f.detected:
            return
        shape = mouth_shape(f.points[None])[0]
        self.stats.add(shape)
        if self.library is not None:
            self.library.offer(f, shape)

    @property
    def scanned(self) -> int:
        """Frames tracked ahead by the scan."""
        return self.reader.scanned

    def scanned_speech(self, so, own_speech) -> OwnSpeech:
        """The video's own speech over the first scanned frames (``own_speech``: its segments
        with their phones' futures, from speech.prefetch_alignment): the motion model's params,
        the tracked landmarks (NaN where not detected), speech/silence and the sound, for the
        calibration and the learned mouth."""
        from ..speech import SpeechAnalyser

        pairs = list(own_speech)
        n = min(self.scanned, sum(seg.num_frames for seg, _ in pairs))
        pts = self.reader.scanned_points(n)
        analyser = SpeechAnalyser(so, None, need_aligner=True)  # (its VAD comes with the aligner)
        model = MotionModel(self.options.motion)
        params, phones, energy, voiced, audio = [], [], [], [], []
        for seg, future in pairs:
            speech = analyser.speech(seg, self.timings, future)
            params.append(model.frames(speech).params)
            phones.append(phone_coverage(speech))
            energy.append(speech.energy)
            voiced.append(speech.voiced)
            audio.append(seg.analysis)
        if not params:
            return OwnSpeech(np.zeros((0, len(MOTION_INDEX)), np.float32), pts[:0], np.zeros(0, bool),
                             np.zeros(0, np.float32), self.fps, np.zeros((0, len(PHONE_GROUPS)), np.float32),
                             np.zeros(0, np.float32))
        P = np.concatenate(params)[:n]
        k = len(P)
        return OwnSpeech(P, pts[:k], np.concatenate(voiced)[:k], np.concatenate(audio), self.fps,
                         np.concatenate(phones)[:k], np.concatenate(energy)[:k])

    def calibrate(self, calibration: Calibration | None) -> None:
        """Use ``calibration`` (None: the rig's geometry on the measured closed gap and width)."""
        self.calibration = calibration or default_calibration(self.stats)
        self.report.calibration = self.calibration
        lag = self.calibration.lag_frames
        if lag:  # this speaker's mouth-to-sound timing: the mouth leads the sound by lag frames more
            lead = float(np.clip(self.options.motion.lead_s - lag / self.fps, 0.0, 0.25))
            self.motion = MotionModel(dataclasses.replace(self.options.motion, lead_s=lead))

    def use_learned(self, learned: LearnedMouth | None, fit: LearnedFit | None) -> None:
        """Draw the mouths the learned fusion asks for (None: the calibrated phone model's)."""
        self.learned = learned
        self.report.learned = fit

    def expect(self, frames: int | None) -> None:
        """The job needs at least ``frames`` output frames (None: unknown)."""
        if frames is not None:
            self._total = max(self._total or 0, frames)

    # -- FaceSource ----------------------------------------------------------------------------

    def animate(self, segment: Segment, speech: Speech | None,
                ahead: tuple[Segment, Speech] | None = None) -> MouthDrive:
        """The mouth for ``segment``; ``ahead``: the next segment and its speech, the learned
        mouth's look-ahead across the cut (ignored by the phone model)."""
        if self.calibration is None:
            self.calibrate(None)
        silent = speech is None
        if silent:  # a stretch without speech (--keep-length): a relaxed closed mouth
            n = segment.num_frames
            speech = Speech((), np.zeros(n, np.float32), np.zeros(n, bool), self.fps, segment.first_frame)
        motion = self.motion.frames(speech)
        if self.learned is not None and not silent:
            nxt = None
            if ahead is not None:  # its motion from a model of its own (MotionModel keeps blink state)
                if self._ahead_motion is None or self._ahead_motion.options != self.motion.options:
                    self._ahead_motion = MotionModel(self.motion.options)
                nxt = (ahead[0], ahead[1], self._ahead_motion.frames(ahead[1]).params)
            targets = self.learned.targets(segment, speech, motion.params, nxt)
        else:
            targets = self.calibration.target(motion.params)
        return MouthDrive(motion, targets)

    def render(self, drive: MouthDrive) -> VideoFrames:
        parts = list(self.render_parts(drive))
        frames = torch.cat([p.frames for p in parts]) if parts else torch.zeros((0, self.size[1], self.size[0], 3),
                                                                                   dtype=torch.uint8)
        return VideoFrames(frames, drive.fps, drive.first_frame)

    def render_parts(self, drive: MouthDrive) -> Iterator[VideoFrames]:
        """The frames of ``drive`` in chunks of at most ``chunk_frames`` (and CHUNK_BYTES). With
        a draw pool, a chunk's pixel work runs on the pool while the next chunk's frames are
        decoded and its mouths chosen here (one chunk in flight)."""
        step = self.step
        params = drive.motion.params
        pending = None
        for a in range(0, drive.num_frames, step):
            p = params[a:a + step]
            frames = [self._source_frame(drive.first_frame + a + k) for k in range(len(p))]
            with self.timings.stage("draw"):
                job = self._start_draw(frames, p, drive.targets[a:a + step], drive.first_frame + a)
            del frames
            if pending is not None:
                yield self._finish_draw(pending, drive.fps)
            pending = job
            if self.pool is None:
                yield self._finish_draw(pending, drive.fps)
                pending = None
        if pending is not None:
            yield self._finish_draw(pending, drive.fps)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    # -- the timeline --------------------------------------------------------------------------

    def _source_frame(self, i: int) -> FootageFrame:
        assert i == self._out, (i, self._out)
        self._out += 1
        n = self.reader.num_frames
        if not self.timeline.bouncing:
            outlast = self._total is not None and n is not None and self._total > n
            if not (outlast and i >= n - self.fps):
                f = self.reader.next()
                if f is not None:
                    self._last = f
                    return f
            if self.reader.ring is None:  # told the speech was shorter: hold the last frame
                self.report.looped += 1
                return self._last
            self._start_loop(i)
        j = self.timeline.source(i)
        if j != i:
            self.report.looped += 1
        return self.reader.ring.get(j)

    def _start_loop(self, i: int) -> None:
        self.reader.read_to_end()
        ring = self.reader.ring
        end = self.reader.num_frames
        lo = max(self.reader.ring_from, end - ring.slots, 0)
        speed = head_speed([ring.points(j) for j in range(lo, end)])
        self.timeline.plan(i, end, speed, lo)

    # -- drawing -------------------------------------------------------------------------------

    def _start_draw(self, frames: list[FootageFrame], params: np.ndarray, targets: np.ndarray, first: int
                    ) -> "DrawJob":
        """Start drawing ``frames`` (their mouths redrawn to ``targets`` [n, 2] where they have a
        face): the sequential part here (which mouth each frame shows, the report), the pixel
        work of each frame (copy + mouth) on the pool, or here without one."""
        n = len(frames)
        out = self._arrays.get(n)
        idx = [k for k, f in enumerate(frames) if f.points is not None]
        jobs: list = [None] * n
        drawn = None
        if idx:
            paint, drawn = self.mouth_drawer().prepare([frames[k] for k in idx], targets[idx], params[idx])
            for k, job in zip(idx, paint):
                jobs[k] = job
        self._account(n, idx, targets, drawn)
        pictures = [f.image for f in frames]

        def work(k: int) -> None:
            np.copyto(out[k], pictures[k])
            if jobs[k] is not None:
                jobs[k](out[k])

        if self.pool is None:
            for k in range(n):
                work(k)
            return DrawJob(out, first, [])
        return DrawJob(out, first, [self.pool.submit(work, k) for k in range(n)])

    def pick_mouths(self, frames: list[FootageFrame], targets: np.ndarray) -> list:
        """The sequential part of drawing ``frames`` without their pixels (the span renderer's;
        footage mouth only): the library entry each frame shows (None: no face), the report."""
        n = len(frames)
        idx = [k for k, f in enumerate(frames) if f.points is not None]
        entries: list = [None] * n
        drawn = None
        if idx:
            picked, drawn = self.mouth_drawer().pick([frames[k] for k in idx], targets[idx])
            for k, e in zip(idx, picked):
                entries[k] = e
        self._account(n, idx, targets, drawn)
        return entries

    def _account(self, n: int, idx: list[int], targets: np.ndarray, drawn: np.ndarray | None) -> None:
        """The report (and its trace) for n frames drawn, those at ``idx`` with a face."""
        self.report.frames += n
        self.report.no_face += n - len(idx)
        self.report.dubbed += len(idx)
        trace = self.report.trace
        if trace is not None:
            asked, shown = np.full(n, np.nan), np.full(n, np.nan)
            asked[idx] = targets[idx, 0]
            if drawn is not None:
                shown[idx] = drawn[:, 0]
            trace.setdefault("asked", []).extend(asked.tolist())
            trace.setdefault("drawn", []).extend(shown.tolist())

    def _finish_draw(self, job: "DrawJob", fps: float) -> VideoFrames:
        with self.timings.stage("draw"):
            try:
                for fut in job.futures:
                    fut.result()
            except BaseException:
                for fut in job.futures:
                    fut.cancel()
                raise
        release_freed_memory(every_s=0.5)
        return VideoFrames(torch.from_numpy(job.out), fps, job.first)

    def mouth_drawer(self):
        """The mouth drawer (FootageMouth or MeshMouth), chosen on first use (auto: footage when
        the library can draw this speaker)."""
        if self._drawer is None:
            kind = self.options.mouth
            if kind == "auto":
                ok, why = self.library.usable(self.stats)
                kind = "footage" if ok else "mesh"
                if not ok:
                    log.warning("%s: %s; drawing the mouth with the mesh renderer instead", self.name, why)
                    self.report.notes.append(why)
            if kind == "footage":
                from .mouths import FootageMouth

                self._drawer = FootageMouth(self.library, self.options, self.size)
            else:
                from .meshmouth import MeshMouth

                self._drawer = MeshMouth(self.options, self.size, self.fps, self.stats)
            self.report.mouth = kind
        if self.library is not None:
            self.report.library = len(self.library)
        return self._drawer


def release_freed_memory(every_s: float = 0.0) -> None:
    """Give freed heap pages back to the OS (glibc's malloc_trim). Frames are megabytes each and
    are allocated on one thread and freed on another (the encoder's); glibc keeps such memory in
    its arenas, and RSS crept up by ~0.5 GB over a 720p job without this. No-op elsewhere.
    ``every_s``: at most once per that many seconds (a trim walks every arena: ~1-30 ms)."""
    global _TRIM, _TRIMMED
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    now = time.monotonic()
    if _TRIM and now - _TRIMMED >= every_s:
        _TRIM(0)
        _TRIMMED = now


_TRIM = None
_TRIMMED = -1e9
