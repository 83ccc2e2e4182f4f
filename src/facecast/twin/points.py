"""The twin's 53-point mouth layout, shared by its preparation, mouth model and renderer.

Each twin predicts, draws and crops the same 53 mediapipe landmarks: outer lips (20), inner lips
(20), lower jaw line (13), in that order. Indices *into this layout* (0..52) are what the mouth
model and the sketch work with; ``MOUTH_POINTS`` maps them back to face-mesh indices.
"""

from __future__ import annotations

from facecast.landmarks import JAW_LOWER, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER

__all__ = ["MOUTH_POINTS", "MOUTH_SLICES", "NUM_POINTS"]

MOUTH_POINTS: tuple[int, ...] = (
    LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[1:-1] + LIPS_INNER_UPPER + LIPS_INNER_LOWER[1:-1] + JAW_LOWER
)
"""Landmarks the twin's mouth model predicts and its renderer is conditioned on (53): outer lips
(20), inner lips (20), lower jaw line (13), in that order."""
MOUTH_SLICES = {"outer": slice(0, 20), "inner": slice(20, 40), "jaw": slice(40, 53)}
"""Where each chain sits in the layout."""
NUM_POINTS = len(MOUTH_POINTS)
"""53."""
