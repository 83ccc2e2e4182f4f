"""Twin preparation: training footage -> tracked, stabilised mouth crops, audio and a speech map.

Two stages, so the expensive, CPU-only one can be cached and carried (the GPU machine has no
mediapipe):

1. ``track_clip(path) -> ClipTrack``: face-mesh landmarks of every frame (mediapipe, smoothed),
   saved/loaded with ``save_tracks`` / ``load_tracks`` (npz).
2. ``prepare(tracks, options) -> Footage``: checks the footage, splits it at cuts, decodes the
   frames and warps each into a mouth crop aligned to the face (similarity transform from the
   eyes), with the mouth/jaw landmarks in crop units, the clip's 16 kHz audio and a voiced map.

Crop geometry (why): the renderer only ever sees the lower face in a frame that follows the head
(rotation, scale, translation from the eye line), so head motion is not something it must learn,
and the same network weights serve any background frame. The crop is ``crop_iod`` inter-ocular
distances (IOD) wide, centred on the footage's median mouth position *relative to the eyes*
(not the moving mouth, which would make the crop bob with the jaw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2  # installed with mediapipe (opencv-contrib-python)
import numpy as np

from facecast.errors import InputError
from facecast.landmarks import LEFT_EYE_CORNERS, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, NOSE_TIP, RIGHT_EYE_CORNERS
from facecast.twin.options import PrepOptions
from facecast.twin.points import MOUTH_POINTS

__all__ = [
    "ClipTrack",
    "Footage",
    "crop_affine",
    "decode_all",
    "load_tracks",
    "mouth_in_crop",
    "prepare",
    "save_tracks",
    "track_clip",
]

# Eye corners + nose bridge: no speech motion.
_STABLE = RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS + (168, 6, 197, 195, 5, 4, NOSE_TIP)


@dataclass
class ClipTrack:
    """Stage-1 result for one clip. points: float32 [N, 478, 3] source pixels (NaN where no face);
    found: bool [N]; fps; size: (W, H) of the frames the points refer to."""

    path: str
    fps: float
    size: tuple[int, int]
    points: np.ndarray
    found: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])


@dataclass
class Footage:
    """Prepared training material, all clips' usable frames concatenated (N frames).

    crops: uint8 [N, R, R, 3] mouth crops (RGB).
    mouth: float32 [N, 53, 2] MOUTH_POINTS in crop units (0..1, x right, y down).
    affine: float32 [N, 2, 3] source pixels -> crop pixels, per frame.
    clip: int16 [N] index into ``clips``; frame: int32 [N] frame index within that clip.
    voiced: bool [N] speech (silero VAD) at the frame's time.
    segment: int32 [N] id of the contiguous shot the frame belongs to (no cut inside).
    clips: per clip {"path", "fps", "size", "audio" (float32 [n] 16 kHz)}.
    summary: what was found and used (seconds, frames, speech, cuts, dropped).
    """

    crops: np.ndarray
    mouth: np.ndarray
    affine: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    voiced: np.ndarray
    segment: np.ndarray
    clips: list[dict]
    crop_iod: float
    anchor: tuple[float, float]
    summary: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.crops.shape[0])


# ---------------------------------------------------------------------------------------------
# Stage 1: tracking (mediapipe, CPU)


def track_clip(path: str | Path, *, max_side: int = 1024) -> ClipTrack:
    """Face-mesh landmarks of every frame of a video (see ``facecast.face.track_video``)."""
    from facecast.face import track_video
    from facecast.media import open_video

    source = open_video(path, max_side=max_side)
    points, found = track_video(iter(source), fps=source.fps)
    return ClipTrack(str(source.path), source.fps, tuple(source.size), points, found)


def save_tracks(path: str | Path, tracks: list[ClipTrack]) -> None:
    arrays = {}
    for i, t in enumerate(tracks):
        arrays[f"points{i}"] = t.points.astype(np.float32)
        arrays[f"found{i}"] = t.found
        arrays[f"meta{i}"] = np.array([t.fps, t.size[0], t.size[1]], np.float64)
        arrays[f"path{i}"] = np.array(str(t.path))
    np.savez_compressed(path, count=np.array(len(tracks)), **arrays)


def load_tracks(path: str | Path, *, media_dir: str | Path | None = None) -> list[ClipTrack]:
    """Tracks saved by ``save_tracks``. media_dir: look the videos up there by file name (the
    cache was made on another machine)."""
    with np.load(path) as z:
        out = []
        for i in range(int(z["count"])):
            fps, w, h = z[f"meta{i}"]
            p = str(z[f"path{i}"])
            if media_dir is not None:
                p = str(Path(media_dir) / Path(p).name)
            out.append(ClipTrack(p, float(fps), (int(w), int(h)), z[f"points{i}"], z[f"found{i}"]))
    return out


# ---------------------------------------------------------------------------------------------
# Geometry


def _eye_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mid [N,2], across unit [N,2], down unit [N,2], iod [N]) of landmarks [N, 478, >=2]."""
    xy = points[..., :2].astype(np.float64)
    r = xy[:, list(RIGHT_EYE_CORNERS)].mean(axis=1)
    left = xy[:, list(LEFT_EYE_CORNERS)].mean(axis=1)
    across = left - r
    iod = np.linalg.norm(across, axis=-1)
    unit = across / np.maximum(iod, 1e-9)[:, None]
    down = np.stack([-unit[:, 1], unit[:, 0]], axis=-1)
    return (r + left) / 2, unit, down, iod


def mouth_anchor(points: np.ndarray) -> tuple[float, float]:
    """Median mouth centre in the eye frame: (across, down) in IOD units, over frames [N,478,3]."""
    mid, unit, down, iod = _eye_frame(points)
    mouth = points[:, list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER), :2].mean(axis=1)
    rel = mouth - mid
    a = (rel * unit).sum(-1) / iod
    d = (rel * down).sum(-1) / iod
    ok = np.isfinite(a) & np.isfinite(d)
    return float(np.median(a[ok])), float(np.median(d[ok]))


def crop_affine(points: np.ndarray, anchor: tuple[float, float], crop_iod: float, crop_px: int) -> np.ndarray:
    """float64 [N, 2, 3] similarity transforms, source pixels -> crop pixels.

    The crop centre sits at ``anchor`` (IOD units along the eye line and down from it, plus a
    small shift down so the chin fits); x of the crop runs along the eye line."""
    mid, unit, down, iod = _eye_frame(points)
    centre = mid + unit * (anchor[0] * iod)[:, None] + down * ((anchor[1] + 0.22) * iod)[:, None]
    s = crop_px / (crop_iod * iod)  # crop pixels per source pixel
    m = np.zeros((len(iod), 2, 3))
    m[:, 0, :2] = unit * s[:, None]
    m[:, 1, :2] = down * s[:, None]
    # crop = R (p - centre) * s + crop_px / 2
    m[:, 0, 2] = -(m[:, 0, 0] * centre[:, 0] + m[:, 0, 1] * centre[:, 1]) + crop_px / 2
    m[:, 1, 2] = -(m[:, 1, 0] * centre[:, 0] + m[:, 1, 1] * centre[:, 1]) + crop_px / 2
    return m


def mouth_in_crop(points: np.ndarray, affine: np.ndarray, crop_px: int) -> np.ndarray:
    """float32 [N, 53, 2]: MOUTH_POINTS of landmarks [N, 478, 3] in crop units (0..1)."""
    p = points[:, list(MOUTH_POINTS), :2].astype(np.float64)
    q = np.einsum("nij,nkj->nki", affine[:, :, :2], p) + affine[:, None, :, 2]
    return (q / crop_px).astype(np.float32)


def _segments(track: ClipTrack, options: PrepOptions) -> tuple[list[tuple[int, int]], int]:
    """Contiguous runs [a, b) with a face and no cut; and the number of cuts found."""
    p = track.points
    ok = np.isfinite(p).all(axis=(1, 2))
    _, _, _, iod = _eye_frame(np.nan_to_num(p))
    stable = p[:, list(_STABLE), :2]
    jump = np.full(len(p), 0.0)
    if len(p) > 1:
        d = np.linalg.norm(np.diff(stable, axis=0), axis=-1)
        with np.errstate(invalid="ignore"):
            jump[1:] = np.median(d, axis=1) / np.maximum(iod[1:], 1e-9)
    cut = np.nan_to_num(jump, nan=0.0) > options.cut_jump_iod
    runs, start = [], None
    for i in range(len(p)):
        if not ok[i] or cut[i]:
            if start is not None:
                runs.append((start, i))
            start = i if ok[i] else None
        elif start is None:
            start = i
    if start is not None:
        runs.append((start, len(p)))
    min_len = max(2, int(round(options.min_segment_s * track.fps)))
    return [(a, b) for a, b in runs if b - a >= min_len], int(cut.sum())


# ---------------------------------------------------------------------------------------------
# Stage 2: checks, crops, audio


def decode_all(path: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 [N, H, W, 3]: every frame of the video at ``path``, decoded at the (W, H) ``size`` its
    tracks were made at (InputError when it decodes to another size)."""
    from facecast.media import open_video

    source = open_video(path, max_side=max(size))
    frames = np.concatenate([c.frames.numpy() for c in source])
    if frames.shape[2] != size[0] or frames.shape[1] != size[1]:
        raise InputError(f"{path}: decodes to {frames.shape[2]}x{frames.shape[1]}, the tracks were made at "
                         f"{size[0]}x{size[1]}. Track the clip again.")
    return frames


def prepare(tracks: list[ClipTrack], options: PrepOptions = PrepOptions(), *, progress=None) -> Footage:
    """Check the footage and build the training material (see module docstring).

    Raises InputError (naming the file and the fix) for a clip with no face, a face too small,
    too many frames without a face, and when all clips together hold under ``min_speech_s`` of
    speech. Cuts between shots split a clip (reported in ``summary``), they do not reject it.
    progress: optional callable(done_clips, total_clips).
    """
    from facecast.analysis import VoiceActivity
    from facecast.audio import load_audio

    if not tracks:
        raise InputError("no training videos given. Give 1-5 minutes of one person talking (MP4 files).")
    all_ok = [t.points[np.isfinite(t.points).all(axis=(1, 2))] for t in tracks]
    for t, ok in zip(tracks, all_ok):
        if len(ok) == 0:
            raise InputError(f"{t.path}: no face found in any frame. Give footage of one person facing the camera.")
        missing = 1.0 - len(ok) / max(1, t.num_frames)
        if missing > options.max_missing:
            raise InputError(f"{t.path}: no face in {missing:.0%} of the frames (at most "
                             f"{options.max_missing:.0%} allowed). Trim the clip to the parts showing the face.")
        iod = float(np.median(_eye_frame(ok)[3]))
        if iod < options.min_iod_px:
            raise InputError(f"{t.path}: the face is too small ({iod:.0f} px between the eyes, need >= "
                             f"{options.min_iod_px:.0f}). Use footage where the face fills more of the frame.")
    anchor = mouth_anchor(np.concatenate(all_ok))

    R = options.crop_px
    crops, mouth, affine, clip_ix, frame_ix, voiced, segment = [], [], [], [], [], [], []
    clips, cuts, seg_id, dropped = [], 0, 0, 0
    vad = VoiceActivity()
    for ci, t in enumerate(tracks):
        runs, n_cuts = _segments(t, options)
        cuts += n_cuts
        audio = load_audio(t.path, sample_rate=16000).mono()
        vad.reset()
        v = vad.voiced_frames(audio, t.fps, t.num_frames)
        clips.append({"path": t.path, "fps": t.fps, "size": list(t.size), "audio": audio})
        frames = decode_all(t.path, t.size) if runs else None
        used = 0
        for a, b in runs:
            pts = t.points[a:b]
            m = crop_affine(pts, anchor, options.crop_iod, R)
            for k in range(b - a):
                crops.append(cv2.warpAffine(frames[a + k], m[k], (R, R), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REFLECT))
            mouth.append(mouth_in_crop(pts, m, R))
            affine.append(m.astype(np.float32))
            clip_ix.append(np.full(b - a, ci, np.int16))
            frame_ix.append(np.arange(a, b, dtype=np.int32))
            voiced.append(v[a:b])
            segment.append(np.full(b - a, seg_id, np.int32))
            seg_id += 1
            used += b - a
        dropped += t.num_frames - used
        if progress is not None:
            progress(ci + 1, len(tracks))
    if not crops:
        raise InputError("no usable stretch of footage (every piece between cuts or face losses is under "
                         f"{options.min_segment_s:.1f} s).")
    voiced_a = np.concatenate(voiced)
    fps_of = np.array([c["fps"] for c in clips])
    clip_a = np.concatenate(clip_ix)
    speech_s = float((voiced_a / fps_of[clip_a]).sum())
    total_s = float((1.0 / fps_of[clip_a]).sum())
    if speech_s < options.min_speech_s:
        raise InputError(f"only {speech_s:.1f} s of speech found in {total_s:.1f} s of usable footage "
                         f"(need >= {options.min_speech_s:.0f} s). Add more video of the person talking.")
    summary = {
        "clips": len(tracks),
        "usable_seconds": round(total_s, 2),
        "speech_seconds": round(speech_s, 2),
        "frames": int(len(voiced_a)),
        "segments": seg_id,
        "cuts": cuts,
        "dropped_frames": int(dropped),
        "source_iod_px": [round(float(np.median(_eye_frame(ok)[3])), 1) for ok in all_ok],
    }
    return Footage(
        crops=np.stack(crops),
        mouth=np.concatenate(mouth),
        affine=np.concatenate(affine),
        clip=clip_a,
        frame=np.concatenate(frame_ix),
        voiced=voiced_a,
        segment=np.concatenate(segment),
        clips=clips,
        crop_iod=options.crop_iod,
        anchor=anchor,
        summary=summary,
    )
