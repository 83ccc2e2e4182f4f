"""Measurements on landmarks: mouth and eye openings, independent of image size and head roll."""

from __future__ import annotations

import numpy as np

from facecast.landmarks import (
    LEFT_EYE_CORNERS,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    LIPS_OUTER_UPPER,
    NUM_LANDMARKS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)

# Central pairs (upper, lower) of the inner lips: the corners say nothing about the opening.
_LIP_PAIRS = [(LIPS_INNER_UPPER[k], LIPS_INNER_LOWER[k]) for k in range(3, 8)]
_RIGHT_LID_PAIRS = [(RIGHT_EYE_UPPER[k], RIGHT_EYE_LOWER[k]) for k in range(2, 7)]
_LEFT_LID_PAIRS = [(LEFT_EYE_UPPER[k], LEFT_EYE_LOWER[k]) for k in range(2, 7)]


def mouth_metrics(points: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth and eye openings of landmarks [N, 478, 3] (or one face [478, 3]), in units that do
    not depend on the image size or head roll.

    Returns float32 arrays [N] (0-d for one face):
      mouth_open: mean gap between the inner upper and lower lip over the 5 central pairs,
          measured along the face's vertical axis (perpendicular to the eye line), / IOD.
          Observed: 0.000-0.03 on closed-mouth photos, 0.12-0.2 showing teeth, 0-0.3 during
          speech; slightly negative when the lips press together.
      mouth_width: outer corner (61) to corner (291) distance / IOD (0.73-0.88 on neutral
          photos, ~0.95 smiling).
      eye_open_right, eye_open_left: lid gap (5 central pairs) / that eye's corner-to-corner
          width (0.18-0.30 open on the test photos, <= 0.05 at the bottom of a blink);
          subject's right/left.
      interocular: IOD in pixels (as FaceLandmarks.interocular).
    NaN landmarks give NaN metrics.
    """
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 2
    if single:
        p = p[None]
    if p.ndim != 3 or p.shape[1] != NUM_LANDMARKS or p.shape[2] < 2:
        raise ValueError(f"points must be [N, {NUM_LANDMARKS}, 3] or [{NUM_LANDMARKS}, 3], got {np.shape(points)}")
    xy = p[:, :, :2]
    right_eye = xy[:, list(RIGHT_EYE_CORNERS)].mean(axis=1)
    left_eye = xy[:, list(LEFT_EYE_CORNERS)].mean(axis=1)
    across = left_eye - right_eye  # towards the subject's left (image right)
    iod = np.linalg.norm(across, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = across / iod[:, None]
        # Rotate +90 degrees in image coordinates (y down): the face's "down" direction.
        down = np.stack([-unit[:, 1], unit[:, 0]], axis=-1)

        def gap(pairs: list[tuple[int, int]]) -> np.ndarray:
            upper = xy[:, [u for u, _ in pairs]]
            lower = xy[:, [lo for _, lo in pairs]]
            return ((lower - upper) * down[:, None, :]).sum(axis=-1).mean(axis=-1)

        def width(a: int, b: int) -> np.ndarray:
            return np.linalg.norm(xy[:, b] - xy[:, a], axis=-1)

        metrics = {
            "mouth_open": gap(_LIP_PAIRS) / iod,
            "mouth_width": width(LIPS_OUTER_UPPER[0], LIPS_OUTER_UPPER[-1]) / iod,
            "eye_open_right": gap(_RIGHT_LID_PAIRS) / width(RIGHT_EYE_UPPER[0], RIGHT_EYE_UPPER[-1]),
            "eye_open_left": gap(_LEFT_LID_PAIRS) / width(LEFT_EYE_UPPER[0], LEFT_EYE_UPPER[-1]),
            "interocular": iod,
        }
    return {k: (v[0] if single else v).astype(np.float32) for k, v in metrics.items()}
