"""What a face does while someone else speaks, and where it looks.

A listener is driven by its own MotionModel (the one that animates it when it speaks) with
silent speech: no phones, no voicing, so the mouth rests closed; its blinks keep the schedule
they have while it talks, its head keeps drifting (both are functions of time, so nothing jumps
when it starts or stops speaking). On top of that:

    nods   small listener nods (backchannels): every 2.5-7 s (seeded, a renewal process), a
           0.5-0.9 s dip of the head of 1-2 degrees, some of them double
    gaze   the head turns a little towards whoever speaks (up to ``GAZE_RAD``), and back to the
           camera when the face itself speaks, eased with a time constant of ``GAZE_TAU_S``

A listener never moves its mouth with someone else's words: it never sees their phones.
"""

from __future__ import annotations

import math

import numpy as np

from ..types import MOTION_INDEX, MotionFrames, Speech

__all__ = ["silent_speech", "NodSchedule", "Gaze", "listen", "GAZE_RAD", "GAZE_TAU_S"]

GAZE_RAD = 0.07
"""How far (radians, about 4 degrees) a listener's head turns towards the speaker."""
GAZE_TAU_S = 0.35
"""Time constant of the turn, seconds."""


def silent_speech(first_frame: int, num_frames: int, fps: float) -> Speech:
    """Speech of nothing: what a listener's motion model hears."""
    return Speech((), np.zeros(num_frames, np.float32), np.zeros(num_frames, bool), fps, first_frame)


class NodSchedule:
    """Listener nods at seeded times (gamma intervals), extended in time order, so successive
    windows give the same nods as one long one. ``pitch(times)``: radians, + = nod down."""

    def __init__(self, seed: int, gain: float = 1.0) -> None:
        self._rng = np.random.default_rng([seed, 0x90D])
        self._nods: list[tuple[float, float, float]] = []  # (onset, duration, amplitude)
        self._next = float(self._rng.uniform(0.8, 3.0))
        self.gain = gain

    def _extend(self, until: float) -> None:
        r = self._rng
        while self._next < until:
            dur, amp = float(r.uniform(0.5, 0.9)), float(r.uniform(0.018, 0.035))
            self._nods.append((self._next, dur, amp))
            if r.random() < 0.25:  # a double nod
                self._nods.append((self._next + dur * 0.9, dur * 0.8, amp * 0.7))
            self._next += 2.5 + float(r.gamma(2.0, 1.2))

    def pitch(self, times: np.ndarray) -> np.ndarray:
        out = np.zeros(times.shape, np.float32)
        if times.size == 0:
            return out
        self._extend(float(times[-1]) + 2.0)
        for onset, dur, amp in self._nods:
            x = (times - onset) / dur
            inside = (x >= 0) & (x <= 1)
            out += np.where(inside, amp * np.sin(np.pi * np.clip(x, 0, 1)) ** 2, 0.0).astype(np.float32)
        self._nods = [n for n in self._nods if n[0] + n[1] >= times[0] - 1.0]  # memory stays flat
        return out * self.gain


class Gaze:
    """The head's turn towards a target yaw (radians), eased frame by frame; the state carries
    from one window to the next, so it is continuous across beats."""

    def __init__(self, fps: float) -> None:
        self.value = 0.0
        self._a = math.exp(-1.0 / (GAZE_TAU_S * fps))

    def yaw(self, target: float, n: int) -> np.ndarray:
        out = np.empty(n, np.float32)
        v, a = self.value, self._a
        for i in range(n):
            v = a * v + (1 - a) * target
            out[i] = v
        self.value = v
        return out


def listen(motion: MotionFrames, nods: NodSchedule | None, gaze: np.ndarray) -> MotionFrames:
    """``motion`` (the face's own model on silent or spoken speech) with the listener's nods
    (None: a speaking face, no listener nods) and the gaze turn added to the head."""
    params = motion.params.copy()
    times = (motion.first_frame + np.arange(motion.num_frames)) / motion.fps
    if nods is not None:
        params[:, MOTION_INDEX["head_pitch"]] += nods.pitch(times)
    params[:, MOTION_INDEX["head_yaw"]] += gaze
    return MotionFrames(params, motion.fps, motion.first_frame)
