"""What `facecast eval` measures on each row, and how a metric is shown and judged (MetricSpec).

Metrics
-------
All landmarks are mediapipe face-mesh points tracked in each video with ``face.track_video``
(unsmoothed: no filter can hide or create motion). IOD = inter-ocular distance (eye-corner
centres) of that frame. Per-frame comparisons run over the frames both videos have.

aperture_corr    Pearson correlation, at lag 0, of the mouth opening (``mouth_metrics``
                 "mouth_open": inner-lip gap along the face's vertical axis / IOD) of the row
                 with the real clip's. 1 = the same opening pattern. A constant opening (the still
                 row) has no correlation: shown as "-" and scored as 0.
aperture_lag     The lag in -10..+10 frames that maximises that correlation; positive = the row's
                 mouth moves later than the real one. ``aperture_corr_best`` is the correlation
                 there.
av_offset        Audio-visual offset: the lag in -10..+10 frames maximising the correlation of
                 the row's mouth opening with the speech loudness envelope
                 (``analysis.loudness_envelope`` at the clip fps); positive = video late.
                 ``av_corr`` is that peak correlation. A real face has its own offset (the mouth
                 opens slightly before the sound); the row should match the real value.
lmd              Normalised mouth landmark distance. Chen et al. 2018 ("Lip Movements Generation
                 at a Glance", ECCV) define LMD as the Euclidean distance between corresponding
                 mouth landmarks of the real and the generated frame, averaged over landmarks and
                 frames, in pixels of their (aligned, fixed-size) face crops; Wav2Lip and later
                 papers report the same pixel quantity on their crops. Ours: the 40 lip landmarks
                 (outer and inner contours) of each face are expressed relative to their own
                 centroid (translation removed), rotated so the eye line is horizontal (roll
                 removed) and divided by that frame's IOD (scale removed), then the mean
                 Euclidean distance is taken. So it measures mouth *shape* only, in IOD units,
                 independent of resolution and head position; it is not comparable to published
                 pixel LMDs.
closed_in_silence  Fraction of silent frames (``audio.VoiceActivity``, silero-VAD, says no
                 speech) whose mouth opening is below a threshold = the real clip's closed level
                 (5th percentile of its mouth opening) + 0.05 IOD. Needs >= 5 silent frames
                 (else "-"). Compared with the real clip's own value.
blink_rate       Blinks per minute: runs of frames whose eye openness (mean of both eyes'
                 lid gap / eye width) is below 50 % of the clip's median, lasting at most 0.5 s
                 (longer dips are squints or looks down), counted as events.
jitter           Landmark jitter: median over frames of the mean |p[t+1] - 2 p[t] + p[t-1]| /
                 IOD over 22 non-mouth landmarks (eye corners, brows, nose, forehead, temples).
                 Includes the tracker's own noise (~0.003-0.005 on a still face): the still row
                 shows that floor. Lower is steadier.
identity         dlib's 128-D face-recognition embedding (ResNet model from the PyPI package
                 ``face-recognition-models``, run by ``dlib-bin``): mean Euclidean distance
                 between the portrait's embedding and those of up to 12 frames of the row
                 (dlib's "same person" threshold is 0.6; 0 = identical). Skipped with a note
                 when dlib is not installed.
psnr_outside_mouth, ssim_outside_mouth
                 PSNR (dB, RGB) and SSIM (luma, skimage) of the row against the real frame over
                 the pixels outside the lower face (convex hull of lips, jaw line and chin in
                 either frame, dilated by 0.15 IOD): background, hair, eyes and forehead must
                 stay put. Up to 150 evenly spaced frames. The real row is identical (inf / 1).
duration_diff    (row frames - real frames) / fps, seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import face
from ..landmarks import (CHIN, JAW_LOWER, LEFT_EYE_CORNERS, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER_LOWER,
                         LIPS_OUTER_UPPER, RIGHT_EYE_CORNERS)
from .clips import Clip

__all__ = ["MetricSpec", "METRICS", "METRIC_BY_KEY", "LAG_RANGE", "lagged_corr", "normalised_lips", "lmd", "jitter",
           "blink_events", "blink_rate", "closed_in_silence", "image_quality_outside_mouth", "IdentityModel",
           "identity_model", "identity_available", "identity_unavailable_reason", "score_row"]

LAG_RANGE = 10
"""Lags searched by aperture_lag and av_offset, in frames either way."""


LIPS = tuple(dict.fromkeys(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER + LIPS_INNER_LOWER))  # 40 points
LOWER_FACE = tuple(dict.fromkeys(LIPS + JAW_LOWER + (CHIN, 58, 288)))  # 58, 288: the oval at the mouth corners
STABLE = (*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS,  # eye corners
          70, 105, 107, 336, 334, 300,  # brows
          1, 4, 6, 168, 197, 195,        # nose ridge and tip
          10, 151, 234, 454, 127, 356)   # forehead, temples/cheeks


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is shown and judged.

    better: "higher", "lower", "zero" (|value| small is better) or "real" (closer to the real
        clip's value is better).  tol: differences up to this are "the same" (the metric's
        resolution on 5-20 s clips).  missing: the score a missing value (NaN) counts as, in the
        metric's own units (e.g. no correlation = 0).  lipsync: a lip-sync metric (judged against
        the loudness baseline too).
    """

    key: str
    label: str
    unit: str
    better: str
    tol: float
    fmt: str = "{:.3f}"
    missing: float = float("nan")
    lipsync: bool = False


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("aperture_corr", "mouth aperture corr. with real (lag 0)", "r", "higher", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("aperture_corr_best", "  ... at best lag", "r", "higher", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("aperture_lag", "  best lag vs real (+ = late)", "frames", "zero", 1.0, "{:+.0f}", LAG_RANGE, True),
    MetricSpec("lmd", "mouth landmark distance (norm. LMD)", "IOD", "lower", 0.005, "{:.3f}", float("nan"), True),
    MetricSpec("av_corr", "aperture-loudness peak corr.", "r", "real", 0.10, "{:.2f}", 0.0, True),
    MetricSpec("av_offset", "  AV offset (+ = video late)", "frames", "real", 1.0, "{:+.0f}", LAG_RANGE, True),
    MetricSpec("closed_in_silence", "closed mouth in silence", "fraction", "real", 0.10, "{:.2f}"),
    MetricSpec("blink_rate", "blink rate", "/min", "real", 3.0, "{:.1f}"),
    MetricSpec("jitter", "landmark jitter (non-mouth)", "IOD/frame^2", "lower", 0.001, "{:.4f}"),
    MetricSpec("identity", "identity distance to portrait (dlib)", "L2", "lower", 0.03, "{:.3f}"),
    MetricSpec("psnr_outside_mouth", "PSNR outside lower face", "dB", "higher", 0.5, "{:.1f}"),
    MetricSpec("ssim_outside_mouth", "SSIM outside lower face", "", "higher", 0.01, "{:.3f}"),
    MetricSpec("duration_diff", "duration difference", "s", "zero", 0.05, "{:+.2f}"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return float("nan")
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def lagged_corr(x: np.ndarray, ref: np.ndarray, max_lag: int = LAG_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """(lags, r): Pearson correlation of x[t + lag] with ref[t] for lag in -max_lag..max_lag.
    A positive best lag means x happens later than ref."""
    n = min(len(x), len(ref))
    x, ref = x[:n], ref[:n]
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(lags.shape, np.nan)
    for i, L in enumerate(lags):
        if L >= 0:
            r[i] = _corr(x[L:], ref[: n - L]) if n - L > 3 else np.nan
        else:
            r[i] = _corr(x[: n + L], ref[-L:]) if n + L > 3 else np.nan
    return lags, r


def _best_lag(x: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    lags, r = lagged_corr(x, ref)
    if not np.isfinite(r).any():
        return float("nan"), float("nan")
    i = int(np.nanargmax(r))
    return float(lags[i]), float(r[i])


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: eye-line unit vector [N, 2], face-down unit vector [N, 2], IOD [N]."""
    xy = points[:, :, :2].astype(np.float64)
    right = xy[:, list(RIGHT_EYE_CORNERS)].mean(axis=1)
    left = xy[:, list(LEFT_EYE_CORNERS)].mean(axis=1)
    across = left - right
    iod = np.linalg.norm(across, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = across / iod[:, None]
    down = np.stack([-u[:, 1], u[:, 0]], axis=-1)
    return u, down, iod


def normalised_lips(points: np.ndarray) -> np.ndarray:
    """[N, 40, 2] lip landmarks relative to their centroid, in the face's eye-line frame, / IOD."""
    u, down, iod = _face_frame(points)
    lips = points[:, list(LIPS), :2].astype(np.float64)
    lips = lips - lips.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (lips * u[:, None, :]).sum(-1) / iod[:, None]
        b = (lips * down[:, None, :]).sum(-1) / iod[:, None]
    return np.stack([a, b], axis=-1)


def lmd(points: np.ndarray, real: np.ndarray) -> float:
    n = min(len(points), len(real))
    d = np.linalg.norm(normalised_lips(points[:n]) - normalised_lips(real[:n]), axis=-1).mean(axis=1)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def jitter(points: np.ndarray) -> float:
    if len(points) < 3:
        return float("nan")
    _, _, iod = _face_frame(points)
    p = points[:, list(STABLE), :2].astype(np.float64)
    acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1).mean(axis=1) / iod[1:-1]
    return float(np.nanmedian(acc)) if np.isfinite(acc).any() else float("nan")


def blink_events(eye_open: np.ndarray, fps: float = 25.0, max_seconds: float = 0.5) -> int:
    """Runs of frames with the eye openness below 50 % of the clip's median, lasting at most
    ``max_seconds`` (blinks take 0.1-0.4 s; a longer dip is a squint or a look down)."""
    ok = np.isfinite(eye_open)
    if ok.sum() < 3:
        return 0
    base = float(np.median(eye_open[ok]))
    below = np.where(ok, eye_open < 0.5 * base, False)
    edges = np.diff(np.concatenate([[0], below.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int(np.count_nonzero((ends - starts) <= max(1, round(max_seconds * fps))))


def blink_rate(eye_open: np.ndarray, fps: float) -> float:
    minutes = len(eye_open) / fps / 60.0
    return blink_events(eye_open, fps) / minutes if minutes > 0 else float("nan")


def closed_in_silence(mouth_open: np.ndarray, voiced: np.ndarray, real_mouth_open: np.ndarray) -> float:
    n = min(len(mouth_open), len(voiced))
    silent = ~voiced[:n] & np.isfinite(mouth_open[:n])
    if silent.sum() < 5:
        return float("nan")
    ok = np.isfinite(real_mouth_open)
    thr = float(np.percentile(real_mouth_open[ok], 5)) + 0.05
    return float((mouth_open[:n][silent] < thr).mean())


def _lower_face_mask(points: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    if not np.isfinite(points).all():
        return mask.astype(bool)
    hull = cv2.convexHull(points[list(LOWER_FACE), :2].astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1)
    r = max(1, int(round(0.15 * iod)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def image_quality_outside_mouth(gen: np.ndarray, real: np.ndarray, gen_pts: np.ndarray, real_pts: np.ndarray,
                                max_frames: int = 150) -> tuple[float, float]:
    """(PSNR dB, SSIM) over pixels outside the lower face of both frames (see module doc)."""
    from skimage.metrics import structural_similarity

    n = min(len(gen), len(real))
    if n == 0:
        return float("nan"), float("nan")
    idx = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    H, W = real.shape[1:3]
    se, count, ssims = 0.0, 0, []
    w = np.array([0.299, 0.587, 0.114], np.float32)
    for i in idx:
        g, r = gen[i], real[i]
        if g.shape != r.shape:
            raise ValueError(f"generated frames are {g.shape}, real ones {r.shape}: not in the same pixel space")
        iod = float(np.nan_to_num(_face_frame(real_pts[i:i + 1])[2][0], nan=0.0)) or 0.1 * W
        mask = _lower_face_mask(real_pts[i], (H, W), iod) | _lower_face_mask(gen_pts[i], (H, W), iod)
        keep = ~mask
        if not keep.any():
            continue
        d = g.astype(np.float32) - r.astype(np.float32)
        se += float((d[keep] ** 2).sum())
        count += int(keep.sum()) * 3
        if np.array_equal(g, r):
            ssims.append(1.0)
            continue
        _, smap = structural_similarity(g.astype(np.float32) @ w, r.astype(np.float32) @ w, data_range=255.0,
                                        full=True)
        ssims.append(float(smap[keep].mean()))
    mse = se / max(count, 1)
    psnr = float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    return psnr, float(np.mean(ssims)) if ssims else float("nan")


# --------------------------------------------------------------------------------------------
# Identity (dlib)
# --------------------------------------------------------------------------------------------


class IdentityModel:
    """dlib's 5-point aligner + 128-D ResNet face descriptor, from the files of the PyPI package
    face-recognition-models (located without importing it: its __init__ needs pkg_resources,
    which recent setuptools no longer ships). Never downloads anything."""

    def __init__(self) -> None:
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("face_recognition_models is not installed")
        models = Path(list(spec.submodule_search_locations)[0]) / "models"
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._dlib = dlib

    def embed(self, image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        """128-D descriptor of the face whose mediapipe landmarks are ``points`` (None if NaN)."""
        if not np.isfinite(points).all():
            return None
        x0, y0 = points[:, :2].min(axis=0)
        x1, y1 = points[:, :2].max(axis=0)
        H, W = image.shape[:2]
        rect = self._dlib.rectangle(int(max(0, x0)), int(max(0, y0)), int(min(W - 1, x1)), int(min(H - 1, y1)))
        img = np.ascontiguousarray(image, dtype=np.uint8)
        shape = self._shape(img, rect)
        return np.asarray(self._rec.compute_face_descriptor(img, shape), np.float64)


_IDENTITY: IdentityModel | None = None
_IDENTITY_ERROR: str | None = None


def identity_model() -> IdentityModel | None:
    """The shared IdentityModel, or None (with the reason in identity_unavailable_reason())."""
    global _IDENTITY, _IDENTITY_ERROR
    if _IDENTITY is None and _IDENTITY_ERROR is None:
        try:
            _IDENTITY = IdentityModel()
        except (ImportError, RuntimeError, OSError) as exc:
            _IDENTITY_ERROR = (f"identity skipped: dlib face recognition unavailable ({exc}). "
                               "Install it with: pip install dlib-bin face-recognition-models")
    return _IDENTITY


def identity_available() -> bool:
    return identity_model() is not None


def identity_unavailable_reason() -> str | None:
    identity_model()
    return _IDENTITY_ERROR


def score_row(clip: Clip, frames: np.ndarray, points: np.ndarray, found: np.ndarray,
              identity: IdentityModel | None, portrait_emb: np.ndarray | None) -> dict[str, float]:
    """All metrics of one row against the real clip."""
    n = min(len(frames), clip.num_frames)
    m = face.mouth_metrics(points)
    real_m = face.mouth_metrics(clip.points)
    ap, real_ap = m["mouth_open"], real_m["mouth_open"]
    out: dict[str, float] = {}
    out["aperture_corr"] = _corr(ap[:n], real_ap[:n])
    lag, r = _best_lag(ap[:n], real_ap[:n])
    out["aperture_lag"], out["aperture_corr_best"] = lag, r
    out["lmd"] = lmd(points[:n], clip.points[:n])
    off, avr = _best_lag(ap[:n], clip.energy[:n])
    out["av_offset"], out["av_corr"] = off, avr
    out["closed_in_silence"] = closed_in_silence(ap, clip.voiced, real_ap)
    out["blink_rate"] = blink_rate((m["eye_open_left"] + m["eye_open_right"]) / 2, clip.fps)
    out["jitter"] = jitter(points)
    psnr, ssim = image_quality_outside_mouth(frames, clip.frames, points, clip.points)
    out["psnr_outside_mouth"], out["ssim_outside_mouth"] = psnr, ssim
    # With --max-seconds every row is cut to the evaluated frames: its full length is unknown.
    out["duration_diff"] = float("nan") if clip.truncated else (len(frames) - clip.num_frames) / clip.fps
    out["identity"] = float("nan")
    if identity is not None and portrait_emb is not None:
        idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), 12)).round().astype(int))
        dists = []
        for i in idx:
            e = identity.embed(frames[i], points[i])
            if e is not None:
                dists.append(float(np.linalg.norm(e - portrait_emb)))
        out["identity"] = float(np.mean(dists)) if dists else float("nan")
    if not found.any():
        for k in ("aperture_corr", "aperture_corr_best", "lmd", "av_corr", "jitter"):
            out[k] = float("nan")
    return out
