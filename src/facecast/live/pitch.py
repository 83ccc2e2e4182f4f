"""Voice pitch of a live stream's frames, for the brows and nods (`expression.Emphasis` judges
stressed syllables by loudness, length and pitch; without pitch, live streams found almost none).

Each frame's pitch is computed once, from the audio heard, as soon as its analysis window
(``analysis.pitch_track``: 40 ms centred on the frame) lies inside it, and then remembered while
the frame is in the motion window: the window slides one frame per frame, so this costs one
frame's pitch per frame, and it adds no look-ahead (a frame whose window is not heard yet has
no pitch, NaN, until a later frame's window)."""

from __future__ import annotations

import math

import numpy as np

from ..analysis import pitch_track
from ..types import ANALYSIS_RATE

WINDOW_S = 0.04


class FramePitch:
    """Pitch (semitones above 100 Hz, NaN = none or not heard yet) of a live stream's frames."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._known: dict[int, float] = {}

    def window(self, samples: np.ndarray, samples_start: float, lo: int, hi: int, heard_s: float,
               ended: bool) -> np.ndarray:
        """float32 [hi - lo]: the pitch of frames [lo, hi). ``samples``: 16 kHz mono audio from
        ``samples_start`` s, covering these frames' windows as far as heard; ``heard_s``: the
        end of the audio heard (s); ``ended``: no more input will come (the rest is silence)."""
        half = WINDOW_S / 2
        new = [k for k in range(lo, hi) if k not in self._known and (ended or k / self.fps + half <= heard_s)]
        if new:
            k0 = new[0]
            values = pitch_track(samples, ANALYSIS_RATE, self.fps, new[-1] + 1 - k0, k0,
                                 samples_start=samples_start, window_seconds=WINDOW_S)
            for k in new:
                self._known[k] = float(values[k - k0])
        self._known = {k: v for k, v in self._known.items() if k >= lo}
        return np.array([self._known.get(k, math.nan) for k in range(lo, hi)], np.float32)

    def reset(self) -> None:
        """Forget every frame's pitch (a barge-in: the audio after it is new)."""
        self._known.clear()


__all__ = ["FramePitch"]
