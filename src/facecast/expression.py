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
_SETTLE_S = 0.2    # live streams: a vowel ending this long before the audio heard is settled


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class Stress:
    """A stressed syllable: the time of its vowel's loudest frame (s) and how strong, 0..1.
    ``rise_from`` (s): its pulse rises from here when that is later than usual (a live stream
    judged it after its pulse would have started: see ``Emphasis.update``)."""

    time: float
    strength: float
    rise_from: float = -math.inf


class Emphasis:
    """Stressed syllables, found window by window and remembered (see the module docstring)."""

    def __init__(self) -> None:
        self._stresses: list[Stress] = []
        self._judged_until = -math.inf  # vowels peaking before this were judged already
        self._seen: list[tuple[float, float, float, float]] = []  # recent vowels: context for the next windows
        self._vowels_from = -math.inf  # live streams: vowels starting before this were judged already

    @property
    def stresses(self) -> tuple[Stress, ...]:
        return tuple(self._stresses)

    def update(self, speech: Speech, now: float | None = None) -> None:
        """Judge the vowels of ``speech`` whose loudest frame lies in its window.

        A live window ends past the audio received (``speech.heard_frames``), and its phones
        are the recogniser's, which lag the audio: there a vowel is judged once it is settled
        (another phone follows it, or it ended ``_SETTLE_S`` before the heard audio's end) and
        its frames lie inside the heard audio, so its loudness, length and loudest frame are
        known. (Judged by the newest frame instead, the one past the audio, at loudness 0, no
        vowel ever stood out.) ``now`` (s, live streams: the earliest frame still to be shown)
        keeps a stress judged that late from jumping in half-risen: its pulse rises from
        ``now`` instead. Offline windows, all heard, are judged as before.
        """
        fps, f0 = speech.fps, speech.first_frame
        n = speech.num_heard
        if n == 0:
            return
        if n < speech.num_frames and speech.phones:
            self._update_live(speech, n, -math.inf if now is None else now)
            return
        t_end = (f0 + n) / fps
        t_stop = t_end if n == speech.num_frames else (f0 + n - 1) / fps  # the last heard frame may yet be a peak
        cands = self._candidates(speech, n)
        if not speech.phones or not cands:
            cands = self._loudness_peaks(speech.energy[:n].astype(np.float64), speech.voiced[:n], fps, f0)
        if not cands:
            self._judged_until = max(self._judged_until, t_stop)
            return
        cands = [c[:4] for c in cands]
        # Context: this window's vowels and the ones judged before it (live streams hand over
        # short windows: a vowel is judged against the speech around it, not its window alone).
        cands = self._with_context(cands)
        # A live stream hands over one new frame per window: most windows judge nothing.
        if any(self._judged_until <= c[0] < t_stop for c in cands):
            self._judge(cands, [self._judged_until <= c[0] < t_stop for c in cands], -math.inf if now is None else now)
        self._judged_until = max(self._judged_until, t_stop)
        self._seen = [c for c in cands if c[0] >= t_end - _CONTEXT_S]

    def _update_live(self, speech: Speech, n: int, now: float) -> None:
        """``update`` of a live window whose first ``n`` frames are heard (see there)."""
        fps, f0 = speech.fps, speech.first_frame
        t_end = (f0 + n) / fps
        settled = [c for c in self._candidates(speech, n) if c[4] and c[5] <= n]  # ... and heard
        cands = self._with_context([c[:4] for c in settled])
        fresh = [c[6] >= self._vowels_from for c in settled]
        if any(fresh):
            self._judge(cands, [False] * (len(cands) - len(settled)) + fresh, now)
            # Each vowel once: the next one starts where this one ended (half a frame's slack
            # for the recogniser's revisions of a settled vowel's start).
            self._vowels_from = max(c[7] for c, j in zip(settled, fresh) if j) - 0.5 / fps
        self._judged_until = max(self._judged_until, t_end)
        self._seen = [c for c in cands if c[0] >= t_end - _CONTEXT_S]

    def _with_context(self, cands: list) -> list:
        """``cands`` after the vowels seen in earlier windows within ``_CONTEXT_S`` before them."""
        if not cands:
            return [c for c in self._seen]
        t0 = min(c[0] for c in cands)
        fresh = {round(c[0], 4) for c in cands}
        return [c for c in self._seen if c[0] >= t0 - _CONTEXT_S and round(c[0], 4) not in fresh] + cands

    def _candidates(self, speech: Speech, n: int) -> list:
        """(time, loudness, length s, pitch or nan, settled, end frame, start s, end s) of each vowel
        in the first ``n`` (heard) frames of ``speech``'s window, at its loudest frame. Settled:
        another phone follows it, or it ended ``_SETTLE_S`` before the frames' end; end frame:
        past its last frame, from the window's first."""
        fps, f0 = speech.fps, speech.first_frame
        energy = speech.energy[:n].astype(np.float64)
        pitch = speech.pitch if speech.pitch is not None and len(speech.pitch) == speech.num_frames else None
        lo_t, hi_t = (f0 - 1) / fps, (f0 + n + 1) / fps  # a frame's margin for rounding
        last_start = speech.phones[-1].start if speech.phones else math.inf
        settle_t = (f0 + n) / fps - _SETTLE_S
        cands = []
        for p in speech.phones:
            if p.end <= lo_t or p.start >= hi_t or p.phone not in VOWELS:
                continue  # a quick test first: a live window sees a few of the phones it is given
            a, b_all = int(math.floor(p.start * fps)) - f0, int(math.ceil(p.end * fps)) - f0
            a, b = max(a, 0), min(b_all, n)
            if b <= a:
                continue
            k = a + int(energy[a:b].argmax())
            tone = math.nan
            if pitch is not None:
                voiced_pitch = pitch[a:b][np.isfinite(pitch[a:b])]
                tone = float(voiced_pitch.max()) if voiced_pitch.size else math.nan
            settled = p.start < last_start or p.end <= settle_t
            cands.append(((f0 + k) / fps, energy[k], p.duration, tone, settled, b_all, p.start, p.end))
        return cands

    def _judge(self, cands: list, judge: list, rise_from: float) -> None:
        """Stresses among the ``cands`` flagged in ``judge``, each against its context; their
        pulses rise no earlier than ``rise_from`` (s)."""
        times = np.array([c[0] for c in cands])
        loud = np.array([c[1] for c in cands])
        length = np.array([c[2] for c in cands])
        tone = np.array([c[3] for c in cands])
        for i in np.argsort(times):
            t = times[i]
            if not judge[i]:
                continue
            near = np.abs(times - t) <= _CONTEXT_S
            ref = float(np.median(loud[near]))
            score = (loud[i] - ref) / max(0.35 * ref, 0.05)
            score += 0.5 * float(np.clip((length[i] - 0.08) / 0.06, -1.0, 1.0))
            tones = tone[near & np.isfinite(tone)]
            if np.isfinite(tone[i]) and tones.size >= 3:
                score += float(np.clip((tone[i] - np.median(tones)) / 3.0, -1.0, 1.5))  # semitones
            if score > 0.8 and (not self._stresses or t - self._stresses[-1].time >= _MIN_GAP_S):
                strength = float(np.clip(0.4 + (score - 0.8) / 1.5, 0.0, 1.0))
                self._stresses.append(Stress(float(t), strength, float(rise_from)))

    @staticmethod
    def _loudness_peaks(energy: np.ndarray, voiced: np.ndarray, fps: float, f0: int) -> list:
        """Syllable-like loudness peaks where there are no phones (other languages, noise)."""
        if energy.size < 3:
            return []
        k = np.nonzero((energy[1:-1] > energy[:-2]) & (energy[1:-1] >= energy[2:]) & voiced[1:-1])[0] + 1
        return [((f0 + i) / fps, energy[i], 0.1, math.nan) for i in k]

    def pulses(self, times: np.ndarray, min_strength: float = 0.0) -> np.ndarray:
        """0..1 at ``times`` (s): for each stress at least ``min_strength`` strong, a rise over
        0.12 s ending 0.02 s after its vowel's peak (or starting at its ``rise_from``, when
        later), then an exponential fall (0.35 s)."""
        out = np.zeros(times.shape, np.float64)
        for s in self._stresses:
            late = max(s.time, s.rise_from + 0.10)  # the peak the pulse is timed by
            if s.strength < min_strength or late - 0.2 > times[-1] or late + 2.0 < times[0]:
                continue
            x = times - max(s.time - 0.10, s.rise_from)
            shape = np.where(x < 0.12, _smoothstep(x / 0.12), np.exp(-(x - 0.12) / 0.35))
            out = np.maximum(out, s.strength * shape)
        if times.size:  # forget what can no longer matter (hour-long streams)
            self._stresses = [s for s in self._stresses if max(s.time, s.rise_from + 0.10) + 3.0 >= times[0]]
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
