"""Landmark index groups of mediapipe's face mesh (478 points with refine_landmarks=True),
defined once for every stage (face tracking, the rig, the painters, eval, twins).

Orderings were checked on real photos (tests/test_landmarks.py::test_landmark_orderings): the lip,
eye and jaw chains run from the subject's right to the subject's left, i.e. left to right in the
image for an unmirrored frontal face; upper/lower chains share their end points, so
``UPPER + LOWER[::-1]`` (without repeating the corners) is a closed polygon.

All groups are tuples. numpy reads a tuple index as one index per axis, so index arrays with
``list(GROUP)`` or ``np.array(GROUP)``, or inside a larger index (``pts[GROUP, :2]``).
"""

from __future__ import annotations

NUM_LANDMARKS = 478
"""Points per face: 468 mesh points, then 10 iris points."""
N_MESH = 468
"""Mesh points without the irises."""

LIPS_OUTER_UPPER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
"""Outer edge of the upper lip, from the subject's right mouth corner (61) to the left (291)."""
LIPS_OUTER_LOWER: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
"""Outer edge of the lower lip, corner 61 to corner 291."""
LIPS_INNER_UPPER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
"""Inner edge (the mouth opening) of the upper lip, inner corner 78 to inner corner 308."""
LIPS_INNER_LOWER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
"""Inner edge of the lower lip, 78 to 308; point k sits below LIPS_INNER_UPPER[k]."""
MOUTH_CORNERS: tuple[int, ...] = (61, 291, 78, 308)
"""Outer corners (61, 291), then inner corners (78, 308)."""

RIGHT_EYE_UPPER: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133)
"""Subject's right upper eyelid, outer corner 33 to inner corner 133."""
RIGHT_EYE_LOWER: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133)
"""Subject's right lower eyelid, 33 to 133; point k sits below RIGHT_EYE_UPPER[k]."""
LEFT_EYE_UPPER: tuple[int, ...] = (362, 398, 384, 385, 386, 387, 388, 466, 263)
"""Subject's left upper eyelid, inner corner 362 to outer corner 263."""
LEFT_EYE_LOWER: tuple[int, ...] = (362, 382, 381, 380, 374, 373, 390, 249, 263)
"""Subject's left lower eyelid, 362 to 263; point k sits below LEFT_EYE_UPPER[k]."""
EYES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), (LEFT_EYE_UPPER, LEFT_EYE_LOWER))
"""(upper, lower) lid chains of each eye, corner to corner along the eye line."""
RIGHT_EYE_CREASE: tuple[int, ...] = (247, 30, 29, 27, 28, 56, 190)
"""The ring above the subject's right upper lid, in the order of RIGHT_EYE_UPPER[1:-1]."""
LEFT_EYE_CREASE: tuple[int, ...] = (467, 260, 259, 257, 258, 286, 414)
"""The ring above the subject's left upper lid, in the order of LEFT_EYE_UPPER[-2:0:-1]."""
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)
"""Outer and inner corners: their means are the eye centres FaceLandmarks.interocular uses."""

RIGHT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
"""Subject's right eyebrow: its upper edge from the outer end (70) to the inner end (107), then its
lower edge from the outer end (46) to the inner end (55)."""
LEFT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
"""Subject's left eyebrow: upper edge outer (300) to inner (336), lower edge outer (276) to inner (285)."""

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
"""Face outline as a closed loop (the last point connects back to the first), starting at the
top of the forehead (10) and going towards the subject's left (image right), down to the chin
(152) and back up the subject's right side."""
JAW_LOWER: tuple[int, ...] = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397)
"""The part of FACE_OVAL below the mouth corners, from the subject's right jaw (172) through the
chin (152) to the left jaw (397): an open chain. (The next oval points, 58 and 288, are at the
mouth-corner height, above it on some faces, below on others.)"""

CHIN = 152
"""Lowest point of the chin on the face outline."""
NOSE_TIP = 1
RIGHT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)
"""Subject's right iris: centre first, then 4 points on its edge."""
LEFT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)
"""Subject's left iris: centre first, then 4 points on its edge."""
IRISES: tuple[int, ...] = RIGHT_IRIS + LEFT_IRIS
