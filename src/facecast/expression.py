"""Expression and emphasis: the face's mood and the beat of its speech, as motion passes after
the mouth's (`motion.MotionModel` runs them).

    expression  MotionOptions.expression sets a constant smile / brow pose (`EXPRESSIONS`),
                eased in over the first 0.4 s of a job
    stresses    stressed syllables: vowels louder, longer and higher in pitch than the vowels
                around them (`Emphasis`)
    brows       the brows rise briefly on the strongest stresses
    nods        the head nods on stresses (`motion.head` adds them to its loudness emphasis)
    pauses      a friendly expression smiles a little more while the speaker pauses

Like the other passes these are functions of absolute time: stresses are found window by
window (each vowel once, in the window its peak falls in) and remembered, so a pulse that
crosses a window boundary goes on in the next window, and chunked and whole-file jobs agree
away from the cuts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .types import Speech

EXPRESSIONS: dict[str, tuple[float, float, float, float]] = {
    #            smile  brow_raise brow_inner  extra smile in pauses
    "neutral":   (0.0, 0.0, 0.0, 0.0),
    "smile":     (0.45, 0.10, 0.0, 0.25),
    "serious":   (-0.15, -0.40, -0.15, 0.0),
    "surprised": (0.0, 0.75, 0.20, 0.0),
    "sad":       (-0.45, -0.05, 0.65, 0.0),
}
"""MotionOptions.expression -> (smile, brow_raise, brow_inner, extra smile in pauses), in the units
of those motion parameters (types.MOTION_PARAMS)."""

VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
_EASE_IN_S = 0.4
_MIN_GAP_S = 0.45  # between two stresses
_CONTEXT_S = 2.0   # stresses are judged against the vowels this far around them


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class Stress:
    """A stressed syllable: the time of its vowel's loudest frame (s) and how strong, 0..1."""

    time: float
    strength: float


class Emphasis:
    """Stressed syllables, found window by window and remembered (see the module docstring)."""

    def __init__(self) -> None:
        self._stresses: list[Stress] = []
        self._judged_until = -math.inf  # vowels peaking before this were judged already
        self._seen: list[tuple[float, float, float, float]] = []  # recent vowels: context for the next windows

    @property
    def stresses(self) -> tuple[Stress, ...]:
        return tuple(self._stresses)

    def update(self, speech: Speech) -> None:
        """Judge the vowels of ``speech`` whose loudest frame lies in its window."""
        fps, f0, n = speech.fps, speech.first_frame, speech.num_frames
        if n == 0:
            return
        t_end = (f0 + n) / fps
        cands = self._candidates(speech)
        if not cands:
            self._judged_until = max(self._judged_until, t_end)
            return
        # Context: this window's vowels and the ones judged before it (live streams hand over
        # short windows: a vowel is judged against the speech around it, not its window alone).
        t0 = min(c[0] for c in cands)
        fresh = {round(c[0], 4) for c in cands}
        cands = [c for c in self._seen if c[0] >= t0 - _CONTEXT_S and round(c[0], 4) not in fresh] + cands
        # A live stream hands over one new frame per window: most windows judge nothing.
        if any(self._judged_until <= c[0] < t_end for c in cands):
            self._judge(cands, t_end)
        self._judged_until = max(self._judged_until, t_end)
        self._seen = [c for c in cands if c[0] >= t_end - _CONTEXT_S]

    def _candidates(self, speech: Speech) -> list:
        """(time, loudness, length s, pitch or nan) of each vowel of ``speech``'s window, at its
        loudest frame; syllable-like loudness peaks where there are no vowels."""
        fps, f0, n = speech.fps, speech.first_frame, speech.num_frames
        energy = speech.energy.astype(np.float64)
        pitch = speech.pitch if speech.pitch is not None and len(speech.pitch) == n else None
        lo_t, hi_t = (f0 - 1) / fps, (f0 + n + 1) / fps  # a frame's margin for rounding
        cands = []
        for p in speech.phones:
            if p.end <= lo_t or p.start >= hi_t or p.phone not in VOWELS:
                continue  # a quick test first: a live window sees a few of the phones it is given
            a, b = int(math.floor(p.start * fps)) - f0, int(math.ceil(p.end * fps)) - f0
            a, b = max(a, 0), min(b, n)
            if b <= a:
                continue
            k = a + int(energy[a:b].argmax())
            tone = math.nan
            if pitch is not None:
                voiced_pitch = pitch[a:b][np.isfinite(pitch[a:b])]
                tone = float(voiced_pitch.max()) if voiced_pitch.size else math.nan
            cands.append(((f0 + k) / fps, energy[k], p.duration, tone))
        if not speech.phones or not cands:
            cands = self._loudness_peaks(energy, speech.voiced, fps, f0)
        return cands

    def _judge(self, cands: list, t_end: float) -> None:
        """Stresses among ``cands`` peaking in [judged_until, t_end), each against its context."""
        times = np.array([c[0] for c in cands])
        loud = np.array([c[1] for c in cands])
        length = np.array([c[2] for c in cands])
        tone = np.array([c[3] for c in cands])
        for i in np.argsort(times):
            t = times[i]
            if t < self._judged_until or t >= t_end:
                continue
            near = np.abs(times - t) <= _CONTEXT_S
            ref = float(np.median(loud[near]))
            score = (loud[i] - ref) / max(0.35 * ref, 0.05)
            score += 0.5 * float(np.clip((length[i] - 0.08) / 0.06, -1.0, 1.0))
            tones = tone[near & np.isfinite(tone)]
            if np.isfinite(tone[i]) and tones.size >= 3:
                score += float(np.clip((tone[i] - np.median(tones)) / 3.0, -1.0, 1.5))  # semitones
            if score > 0.8 and (not self._stresses or t - self._stresses[-1].time >= _MIN_GAP_S):
                self._stresses.append(Stress(float(t), float(np.clip(0.4 + (score - 0.8) / 1.5, 0.0, 1.0))))

    @staticmethod
    def _loudness_peaks(energy: np.ndarray, voiced: np.ndarray, fps: float, f0: int) -> list:
        """Syllable-like loudness peaks where there are no phones (other languages, noise)."""
        if energy.size < 3:
            return []
        k = np.nonzero((energy[1:-1] > energy[:-2]) & (energy[1:-1] >= energy[2:]) & voiced[1:-1])[0] + 1
        return [((f0 + i) / fps, energy[i], 0.1, math.nan) for i in k]

    def pulses(self, times: np.ndarray, min_strength: float = 0.0) -> np.ndarray:
        """0..1 at ``times`` (s): for each stress at least ``min_strength`` strong, a rise over
        0.12 s ending 0.02 s after its vowel's peak, then an exponential fall (0.35 s)."""
        out = np.zeros(times.shape, np.float64)
        for s in self._stresses:
            if s.strength < min_strength or s.time - 0.2 > times[-1] or s.time + 2.0 < times[0]:
                continue
            x = times - (s.time - 0.10)
            shape = np.where(x < 0.12, _smoothstep(x / 0.12), np.exp(-(x - 0.12) / 0.35))
            out = np.maximum(out, s.strength * shape)
        if times.size:  # forget what can no longer matter (hour-long streams)
            self._stresses = [s for s in self._stresses if s.time + 3.0 >= times[0]]
        return out.astype(np.float32)


def expression_columns(expression: str, times: np.ndarray, voiced_soft: np.ndarray, brows: np.ndarray,
                       gain: float = 1.0) -> np.ndarray:
    """The smile, brow_raise and brow_inner columns [T, 3] at ``times`` (s): the expression's
    pose eased in over the first 0.4 s, the brow pulses ``brows`` [T] (0..1) on top (x0.35, x gain),
    and, for a friendly expression, its extra smile where the speaker pauses (``voiced_soft``
    [T] 0..1, 1 = speaking)."""
    smile, brow, inner, pause_smile = EXPRESSIONS[expression]
    out = np.zeros((times.shape[0], 3), np.float32)
    if not (smile or brow or inner or pause_smile):  # neutral: the brow pulses alone (as below, exactly)
        out[:, 1] = 0.35 * gain * brows
        return np.clip(out, -1.0, 1.0, out=out)
    ease = _smoothstep(times / _EASE_IN_S)
    out[:, 0] = ease * (smile + pause_smile * (1.0 - np.clip(voiced_soft, 0.0, 1.0)))
    out[:, 1] = ease * brow + 0.35 * gain * brows
    out[:, 2] = ease * inner
    return np.clip(out, -1.0, 1.0)


def check_expression(expression: str) -> None:
    if expression not in EXPRESSIONS:
        from .errors import InputError

        raise InputError(f"expression {expression!r}: use one of {', '.join(EXPRESSIONS)}.")


__all__ = ["EXPRESSIONS", "VOWELS", "Stress", "Emphasis", "expression_columns", "check_expression"]
