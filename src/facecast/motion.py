"""Speech -> per-frame motion, as a list of small timeline passes (after Rhubarb's `animate()`).

    mouth_targets   phones -> viseme targets with per-parameter dominance
    coarticulate    dominance-weighted blending (Cohen & Massaro 1993): each phone pulls the
                    mouth towards its target with a strength that rises before the phone
                    (anticipation, `lookahead_s`) and decays after it; sampled on a fine grid and
                    box-filtered into frames, so nothing pops between frames
    closures        p/b/m always reach a full lip closure and f/v a lip tuck for >= 60 ms, which
                    blending alone would round off for short consonants
    loudness        speech energy scales the jaw (quiet speech, smaller mouth); voiced stretches
                    with no recognised phones open with the energy alone (non-English, noise)
    pauses          outside speech (VAD) the mouth relaxes to closed
    blinks          a renewal process (gamma intervals; 145-220 ms blinks: fast close, a frame or
                    two fully closed, slower open; a minority of half-blinks)
    expression      the chosen expression's smile and brows, brows rising on stressed syllables
                    (`expression.py`)
    head            slow drifting head pose plus small nods on stressed syllables and loudness rises

Passes 1-5 run once per phone timeline: file jobs without a transcript have two (recognised
phones, ``Speech.phones``, and recognised words aligned, ``Speech.alt_phones``), and the mouth is
the mean of the two mouths.

Every pass is a pure function of absolute time given the seed (blinks keep a schedule object that
extends itself in order), so chunked and whole-file processing produce the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .expression import Emphasis, check_expression, expression_columns
from .options import MotionOptions
from .types import MOTION_INDEX, MOTION_PARAMS, MotionFrames, PhoneSpan, Speech

# Mouth parameters the viseme table drives, in this order.
MOUTH = ("jaw_open", "lip_spread", "lip_round", "lip_close", "labiodental", "upper_lip")
# The expression's columns, adjacent in MOTION_PARAMS (a slice: no index list per frame).
_EXPRESSION_COLUMNS = slice(MOTION_INDEX["smile"], MOTION_INDEX["brow_inner"] + 1)
assert MOTION_PARAMS[_EXPRESSION_COLUMNS] == ("smile", "brow_raise", "brow_inner")

#             jaw   spread round close labio upper   dominance (mouth shape, closure features)
_VISEME: dict[str, tuple[tuple[float, ...], float]] = {
    "AA": ((0.90, 0.10, 0.00, 0, 0, 0.10), 1.0),
    "AE": ((0.75, 0.35, 0.00, 0, 0, 0.15), 1.0),
    "AH": ((0.60, 0.10, 0.00, 0, 0, 0.05), 0.9),
    "AO": ((0.70, -0.15, 0.45, 0, 0, 0.00), 1.0),
    "AW": ((0.75, -0.05, 0.35, 0, 0, 0.05), 1.0),
    "AY": ((0.80, 0.20, 0.00, 0, 0, 0.10), 1.0),
    "EH": ((0.55, 0.35, 0.00, 0, 0, 0.10), 1.0),
    "ER": ((0.35, -0.10, 0.40, 0, 0, 0.05), 1.0),
    "EY": ((0.36, 0.55, 0.00, 0, 0, 0.10), 1.0),
    "IH": ((0.28, 0.50, 0.00, 0, 0, 0.10), 0.9),
    "IY": ((0.14, 0.80, 0.00, 0, 0, 0.15), 1.0),
    "OW": ((0.50, -0.25, 0.70, 0, 0, 0.00), 1.0),
    "OY": ((0.55, -0.15, 0.55, 0, 0, 0.00), 1.0),
    "UH": ((0.35, -0.25, 0.60, 0, 0, 0.00), 1.0),
    "UW": ((0.22, -0.40, 1.00, 0, 0, 0.00), 1.2),
    "B": ((0.10, 0.00, 0.00, 1, 0, 0.00), 2.0),
    "P": ((0.10, 0.00, 0.00, 1, 0, 0.00), 2.0),
    "M": ((0.08, 0.00, 0.00, 1, 0, 0.00), 2.0),
    "F": ((0.12, 0.10, 0.00, 0, 1, 0.30), 2.0),
    "V": ((0.12, 0.10, 0.00, 0, 1, 0.30), 2.0),
    "TH": ((0.22, 0.20, 0.00, 0, 0, 0.20), 0.8),
    "DH": ((0.20, 0.20, 0.00, 0, 0, 0.20), 0.6),
    "S": ((0.08, 0.45, 0.00, 0, 0, 0.35), 0.9),
    "Z": ((0.08, 0.45, 0.00, 0, 0, 0.35), 0.8),
    "SH": ((0.15, -0.20, 0.55, 0, 0, 0.40), 1.2),
    "ZH": ((0.15, -0.20, 0.55, 0, 0, 0.40), 1.2),
    "CH": ((0.15, -0.20, 0.55, 0, 0, 0.40), 1.2),
    "JH": ((0.15, -0.20, 0.55, 0, 0, 0.40), 1.2),
    "T": ((0.25, 0.20, 0.00, 0, 0, 0.10), 0.35),
    "D": ((0.25, 0.20, 0.00, 0, 0, 0.10), 0.35),
    "N": ((0.22, 0.15, 0.00, 0, 0, 0.05), 0.35),
    "L": ((0.30, 0.10, 0.00, 0, 0, 0.05), 0.35),
    "K": ((0.30, 0.05, 0.00, 0, 0, 0.00), 0.30),
    "G": ((0.30, 0.05, 0.00, 0, 0, 0.00), 0.30),
    "NG": ((0.25, 0.05, 0.00, 0, 0, 0.00), 0.30),
    "HH": ((0.45, 0.05, 0.00, 0, 0, 0.00), 0.20),
    "R": ((0.25, -0.10, 0.45, 0, 0, 0.00), 0.9),
    "W": ((0.15, -0.40, 1.00, 0, 0, 0.00), 1.5),
    "Y": ((0.14, 0.60, 0.00, 0, 0, 0.10), 0.8),
    "SIL": ((0.00, 0.00, 0.00, 0, 0, 0.00), 1.0),
}
# Jaw contrast between phones: table jaw targets are spread by this factor about _JAW_PIVOT
# (AA 0.90 -> 1.15, IY 0.14 -> 0.01, SIL stays 0) before blending. Chosen on the tuning clips of
# `facecast eval` (1.0 / 1.5 / 2.0 / 3.0 tried; docs/quality.md, "Before / after: two phone
# timelines and more jaw contrast"), validated on held-out clips: phone-driven jaw differences are
# what beats the loudness mouth, and the table's own contrast was too weak against the loudness
# gain and the pause closures.
_JAW_SPREAD = 1.5
_JAW_PIVOT = 0.4
_BILABIAL = {"P", "B", "M"}
_LABIODENTAL = {"F", "V"}
_SUBSTEPS = 4  # fine samples per frame, box-filtered into the frame value
# Influence time constants per mouth parameter (seconds). Shape features (jaw, spread, round,
# upper lip) anticipate by the look-ahead; closures (p/b/m press, f/v tuck) are quick gestures.
_TAU_AFTER = np.array([0.04, 0.04, 0.05, 0.025, 0.025, 0.04])


def _TAU_BEFORE(lookahead_s: float) -> np.ndarray:
    la = max(lookahead_s, 0.02)
    return np.array([la, la, la, 0.025, 0.025, la])


@dataclass(frozen=True)
class _Target:
    center: float     # seconds
    half: float       # half duration, seconds
    values: np.ndarray  # [6] mouth targets
    dominance: np.ndarray  # [6] per-parameter strength


@lru_cache(maxsize=None)
def _viseme(phone: str, short: bool) -> tuple[np.ndarray, np.ndarray]:
    """(targets [6], dominance [6]) of one phone, read-only; ``short``: a silence under 150 ms.
    Cached: live streams rebuild the targets of the last second of phones for every frame."""
    values, dom = _VISEME.get(phone, ((0.3, 0.0, 0.0, 0, 0, 0.0), 0.3))
    values = np.asarray(values, np.float32)
    if phone in _VISEME and phone != "SIL":
        values[0] = _JAW_PIVOT + _JAW_SPREAD * (values[0] - _JAW_PIVOT)
    d = np.full(6, dom, dtype=np.float32)
    if phone in _BILABIAL:
        d[3] = 5.0  # the lips must close whatever surrounds them
    if phone in _LABIODENTAL:
        d[4] = 5.0
    if phone in ("W", "UW", "OW", "SH", "ZH", "CH", "JH"):
        d[2] = 4.0   # rounding is a strong, spreading feature
    if phone == "SIL":
        d[:] = 0.25 if short else 3.0
    values.flags.writeable = d.flags.writeable = False
    return values, d


def mouth_targets(phones: tuple[PhoneSpan, ...] | list[PhoneSpan]) -> list[_Target]:
    """Pass 1: phones -> viseme targets. Unknown phones take a neutral half-open shape with weak
    dominance so their neighbours decide. Short silences (word gaps) are weak, long ones strong."""
    out = []
    for p in phones:
        values, d = _viseme(p.phone, p.phone == "SIL" and p.duration < 0.15)
        out.append(_Target((p.start + p.end) / 2, max(p.duration / 2, 0.01), values, d))
    return out


def coarticulate(targets: list[_Target], times: np.ndarray, lookahead_s: float) -> np.ndarray:
    """Pass 2: dominance-weighted blend of targets at ``times`` (seconds, [T]) -> [T, 6].

    Dominance of a target at time t: exp(-max(|t-c| - half, 0) / tau) with tau = lookahead before
    the centre (anticipation) and about 40 ms after it (carry-over); closures use ~30 ms both ways. A rest target with tiny dominance
    everywhere keeps the blend defined far from any phone.
    """
    T = times.shape[0]
    num = np.zeros((T, 6), np.float64)
    den = np.full((T, 6), 1e-3, np.float64)  # rest target (zeros) with dominance 1e-3
    if targets:
        centers = np.array([t.center for t in targets])
        # Only targets within reach of this window matter (keeps cost linear in length).
        lo = np.searchsorted(centers, times[0] - 1.0)
        hi = np.searchsorted(centers, times[-1] + 1.0)
        near = targets[lo:hi]
        if near:
            # All targets at once ([K, T, 6]) instead of a Python loop per target; the sums
            # over K run in the same order as the loop did, so the result is the same.
            c = centers[lo:hi, None]
            half = np.array([t.half for t in near])[:, None]
            dom = np.stack([t.dominance for t in near])[:, None, :]
            vals = np.stack([t.values for t in near])[:, None, :]
            dt = times[None, :] - c  # [K, T]
            gap = np.maximum(np.abs(dt) - half, 0.0)
            tau = np.where((dt < 0)[..., None], _TAU_BEFORE(lookahead_s)[None, None, :], _TAU_AFTER[None, None, :])
            w = np.exp(-gap[..., None] / tau) * dom  # [K, T, 6]
            for k in range(len(near)):  # accumulate in order: bit-identical to the loop
                num += w[k] * vals[k]
                den += w[k]
    return (num / den).astype(np.float32)


def closures(mouth: np.ndarray, times: np.ndarray, phones) -> np.ndarray:
    """Pass 3: guarantee full lip closure for p/b/m and a lip tuck for f/v over at least 60 ms
    around the phone centre, ramping over 30 ms either side (no one-frame pops)."""
    for p in phones:
        col = 3 if p.phone in _BILABIAL else 4 if p.phone in _LABIODENTAL else -1
        if col < 0:
            continue
        c = (p.start + p.end) / 2
        half = max(p.duration / 2, 0.03)
        dist = np.maximum(np.abs(times - c) - half, 0.0)
        env = np.clip(1.0 - dist / 0.03, 0.0, 1.0)
        mouth[:, col] = np.maximum(mouth[:, col], env)
        if col == 3:  # jaw nearly shut while the lips press
            mouth[:, 0] = mouth[:, 0] * (1 - env) + np.minimum(mouth[:, 0], 0.1) * env
    return mouth


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def loudness(mouth: np.ndarray, energy: np.ndarray, has_phones: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Pass 4: energy (0..1 per frame, already smoothed to syllable rate) scales the jaw; where
    no phone was recognised but there is voice energy, the jaw follows the energy alone so the
    face still talks. ``scale``: overall jaw amplitude."""
    gain = 0.55 + 0.6 * _smoothstep(energy * 1.4)
    mouth[:, 0] = scale * np.where(has_phones, mouth[:, 0] * gain, 0.65 * _smoothstep(energy * 1.3))
    return mouth


def pauses(mouth: np.ndarray, voiced: np.ndarray, fps: float, short_s: float = 0.5,
           parted: float = 0.0) -> np.ndarray:
    """Pass 5: outside speech the whole mouth relaxes towards rest (closed, neutral).
    ``voiced`` is a 0..1 float already smoothed in time. In pauses shorter than ``short_s``
    between speech the jaw keeps at least ``parted`` (speakers rest with their lips apart
    between phrases rather than shutting the mouth for a breath)."""
    out = mouth * voiced[:, None]
    if parted > 0:
        on = voiced > 0.5
        idx = np.nonzero(on)[0]
        if idx.size:
            gaps = np.diff(idx)
            for k in np.nonzero((gaps > 1) & (gaps <= short_s * fps))[0]:
                a, b = idx[k] + 1, idx[k + 1]
                out[a:b, 0] = np.maximum(out[a:b, 0], parted)
    return out


def spoken_frames(phones, n: int, f0: int, fps: float, options: MotionOptions) -> np.ndarray:
    """bool [n] for frames [f0, f0 + n): near a recognised phone (within the look-ahead /
    carry-over reach, after the lead). Those frames follow the phones in the ``loudness`` pass;
    voiced frames far from any phone follow the loudness alone."""
    spoken = np.zeros(n, bool)
    reach = options.lookahead_s + 0.06
    for p in phones:
        if p.phone != "SIL":
            a = max(int(math.floor((p.start - options.lead_s - reach) * fps)) - f0, 0)
            b = min(int(math.ceil((p.end - options.lead_s + reach) * fps)) - f0, n)
            spoken[a:b] = True
    return spoken


@dataclass(frozen=True)
class Blink:
    """One scheduled blink: onset (s), the closing, fully-closed and opening phases (s), and how
    far the lid comes down (1 = a full blink, below 1 a half-blink)."""

    onset: float
    close: float
    hold: float
    open: float
    depth: float

    @property
    def end(self) -> float:
        return self.onset + self.close + self.hold + self.open


class BlinkSchedule:
    """Blinks from a renewal process with gamma-distributed intervals (not periodic), at a mean
    of ``per_minute`` blinks.

    Each blink closes fast (40-60 ms), stays fully closed 45-60 ms (so every frame grid up to
    22 fps samples the closed lid at least once) and opens more slowly (60-100 ms): 145-220 ms
    in all, as measured blinks take (VanderWerf et al. 2003: ~100-200 ms, the opening about twice
    as long as the closing). A deliberate minority are half-blinks (``HALF`` of them: the lid
    stops at 0.3-0.5) and a few come as double blinks (``DOUBLE``).

    Extends itself in time order, so asking for successive windows gives the same blinks as
    asking for the whole span at once.
    """

    HALF = 0.10
    DOUBLE = 0.06
    MIN_GAP = 0.6  # seconds from one blink's onset to the next, at least

    def __init__(self, per_minute: float, seed: int):
        self._rng = np.random.default_rng([seed, 0xB1])
        self._mean = 60.0 / max(per_minute, 0.1)
        self._blinks: list[Blink] = []
        self._next = float(self._rng.uniform(0.4, min(self._mean, 4.0)))

    def _blink(self, onset: float, full: bool) -> Blink:
        r = self._rng
        depth = 1.0 if full else float(r.uniform(0.3, 0.5))
        return Blink(onset, float(r.uniform(0.04, 0.06)), float(r.uniform(0.045, 0.06)) if full else 0.0,
                     float(r.uniform(0.06, 0.10)), depth)

    def _extend(self, until: float) -> None:
        r = self._rng
        while self._next < until:
            first = self._blink(self._next, r.random() >= self.HALF)
            self._blinks.append(first)
            n = 1
            if r.random() < self.DOUBLE:  # a second blink right after the first
                self._blinks.append(self._blink(first.end + float(r.uniform(0.08, 0.14)), True))
                n = 2
            # Onset to onset: gamma around the mean (shape 3), never closer than MIN_GAP.
            gap = self.MIN_GAP + float(r.gamma(3.0, max(n * self._mean - self.MIN_GAP, 0.1) / 3.0))
            self._next = max(self._next + gap, self._blinks[-1].end + 0.3)

    def blinks(self, start: float, end: float) -> list[Blink]:
        """The blinks overlapping [start, end) seconds (extends the schedule as needed)."""
        self._extend(end + 1.0)
        return [b for b in self._blinks if b.end > start and b.onset < end]

    def value(self, times: np.ndarray) -> np.ndarray:
        """Eyelid closure 0..1 at ``times`` (seconds)."""
        out = np.zeros_like(times, dtype=np.float32)
        if times.size == 0:
            return out
        for b in self.blinks(float(times[0]), float(times[-1]) + 1e-9):
            x = times - b.onset
            closing = _smoothstep(x / b.close)
            opening = _smoothstep((b.close + b.hold + b.open - x) / b.open)
            inside = (x >= 0) & (x <= b.close + b.hold + b.open)
            out = np.maximum(out, np.where(inside, b.depth * np.minimum(closing, opening), 0.0).astype(np.float32))
        # Drop history that can no longer matter (keeps memory flat for hour-long streams).
        self._blinks = [b for b in self._blinks if b.end >= times[0] - 5.0]
        return out


@lru_cache(maxsize=64)
def _head_waves(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded frequencies (Hz) and phases [3 axes, 3 sines] of the head drift (read-only)."""
    rng = np.random.default_rng([seed, 0x4EAD])
    freqs = rng.uniform(0.05, 0.35, size=(3, 3))
    phases = rng.uniform(0, 2 * math.pi, size=(3, 3))
    freqs.flags.writeable = phases.flags.writeable = False
    return freqs, phases


def head(times: np.ndarray, emphasis: np.ndarray, seed: int, gain: float) -> np.ndarray:
    """Pass 7: head (yaw, pitch, roll) in radians at ``times`` -> [T, 3].

    Slow drift: three incommensurate sines per axis with seeded phases (a pure function of time).
    Nods: pitch follows speech emphasis (the rising part of the loudness envelope), as people nod
    on stressed syllables; yaw drifts a little more while speaking.
    """
    freqs, phases = _head_waves(seed)
    amps = np.array([0.030, 0.020, 0.012])  # yaw, pitch, roll (radians): about 1.7, 1.1, 0.7 degrees
    drift = np.stack(
        [amps[a] * np.sin(2 * math.pi * freqs[a][None, :] * times[:, None] + phases[a][None, :]).mean(1) * 1.6
         for a in range(3)], axis=1)
    out = drift.copy()
    out[:, 1] += 0.035 * emphasis
    out[:, 0] *= 1.0 + 0.5 * (emphasis > 0.05)
    return (out * gain).astype(np.float32)


class MotionModel:
    """Phone timelines -> MotionFrames, window by window (see the module docstring)."""

    def __init__(self, options: MotionOptions = MotionOptions()):
        check_expression(options.expression)
        self.options = options
        self._blinks = BlinkSchedule(options.blinks_per_minute, options.seed)
        self._emphasis = Emphasis()

    def _mouth(self, phones, fine_t: np.ndarray, n: int, f0: int, fps: float, gain_energy: np.ndarray,
               voiced: np.ndarray) -> np.ndarray:
        """The six mouth parameters [n, 6] of one phone timeline (passes 1-5), clipped to range."""
        opt = self.options
        mouth = coarticulate(mouth_targets(phones), fine_t, opt.lookahead_s)
        mouth = closures(mouth, fine_t, phones)
        mouth = mouth.reshape(n, _SUBSTEPS, 6).mean(axis=1)  # box filter into frames

        spoken = spoken_frames(phones, n, f0, fps, opt)
        mouth = loudness(mouth, gain_energy, spoken, opt.jaw_scale)
        mouth = pauses(mouth, voiced, fps, parted=opt.pause_jaw * opt.jaw_scale)
        mouth[:, 0:1] *= opt.expressiveness
        mouth[:, 1:3] *= min(opt.expressiveness, 1.5)
        return np.clip(mouth, [0, -1, 0, 0, 0, 0], [1.2, 1, 1, 1, 1, 1])

    def frames(self, speech: Speech, now: float | None = None) -> MotionFrames:
        """Motion for the frames [speech.first_frame, +speech.num_frames).

        ``now`` (s): in a live stream, the time of the earliest frame still to be shown (a
        stress judged late rises from there: ``Emphasis.update``); None offline.

        ``speech.phones`` must cover at least ``lookahead_s`` beyond the last frame for exact
        anticipation at a window's end (the pipeline hands over windows cut in pauses).
        """
        opt = self.options
        fps, n, f0 = speech.fps, speech.num_frames, speech.first_frame
        # Fine time grid: SUBSTEPS samples across each frame interval, centred on frame times.
        offsets = (np.arange(_SUBSTEPS) + 0.5) / _SUBSTEPS - 0.5
        frame_t = (f0 + np.arange(n)) / fps
        # Lead: the mouth at frame time t shows the speech at t + lead_s.
        fine_t = ((f0 + np.arange(n))[:, None] + offsets[None, :]).reshape(-1) / fps + opt.lead_s
        lead = int(round(opt.lead_s * fps))

        energy = _ahead(speech.energy.astype(np.float32), lead)
        voiced = _soften(_ahead(speech.voiced.astype(np.float32), lead), fps)
        # Syllable-rate loudness for the jaw gain: per-frame loudness made the mouth flutter with
        # the envelope (mouth-loudness correlation 0.64 vs 0.28 for real speakers).
        gain_energy = _soften(energy, fps, tau=0.06)
        if opt.drive == "phones":
            sources = [speech.phones] + ([speech.alt_phones] if speech.alt_phones else [])
        else:
            sources = [()]
        # Two phone timelines (recognised phones, recognised words aligned): the mean of the mouths
        # they give. Each is a noisy estimate; averaging keeps what they agree on.
        mouth = np.mean([self._mouth(p, fine_t, n, f0, fps, gain_energy, voiced) for p in sources], axis=0)

        emphasis = np.clip(_box3(np.diff(energy, prepend=energy[:1])) * 4, 0, 1)
        emphasis = _soften(emphasis, fps, tau=0.15) * voiced
        params = np.zeros((n, len(MOTION_PARAMS)), np.float32)
        for i, name in enumerate(MOUTH):
            params[:, MOTION_INDEX[name]] = mouth[:, i]
        params[:, MOTION_INDEX["blink"]] = self._blinks.value(frame_t)
        # Expression and emphasis: stressed syllables raise the brows (the strongest) and nod.
        self._emphasis.update(speech, now)
        stressed = self._emphasis.pulses(frame_t + opt.lead_s * 0.5)
        params[:, _EXPRESSION_COLUMNS] = expression_columns(
            opt.expression, frame_t, voiced, self._emphasis.pulses(frame_t, min_strength=0.55))
        hp = head(frame_t, np.maximum(emphasis, 0.7 * stressed), opt.seed, opt.head_motion)
        params[:, MOTION_INDEX["head_yaw"]] = hp[:, 0]
        params[:, MOTION_INDEX["head_pitch"]] = hp[:, 1]
        params[:, MOTION_INDEX["head_roll"]] = hp[:, 2]
        np.clip(params[:, :6], [0, -1, 0, 0, 0, 0], [1.2, 1, 1, 1, 1, 1], out=params[:, :6])
        return MotionFrames(params, fps, f0)


def random_motion(n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [n, len(MOTION_PARAMS)] of random parameters spanning each one's full range (head
    angles within +-0.06 rad): inputs for renderer equivalence tests and benchmarks, which must
    hold on any valid motion, not only on what speech happens to produce (expression columns
    over -1..1)."""
    p = np.zeros((n, len(MOTION_PARAMS)), np.float32)
    p[:, :6] = rng.uniform([0, -1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], size=(n, 6))
    p[:, MOTION_INDEX["blink"]] = rng.uniform(0, 1, n)
    for name in ("head_yaw", "head_pitch", "head_roll"):
        p[:, MOTION_INDEX[name]] = rng.uniform(-0.06, 0.06, n)
    for name in ("smile", "brow_raise", "brow_inner"):
        p[:, MOTION_INDEX[name]] = rng.uniform(-1, 1, n)
    return p


def _box3(x: np.ndarray) -> np.ndarray:
    """3-tap moving average, the same length as ``x``. np.convolve's "same" mode returns
    max(len(x), 3) values, so windows of 1 or 2 frames (a tiny clip, the last segment of a file)
    take the equivalent slice of the full convolution."""
    k = np.ones(3) / 3
    if x.size >= 3:
        return np.convolve(x, k, "same")
    return np.convolve(x, k, "full")[1:1 + x.size]


def _ahead(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted k frames earlier (x[i + k]), the last value repeated at the end."""
    if k <= 0 or x.size == 0:
        return x
    return np.concatenate([x[k:], np.repeat(x[-1:], min(k, x.size))])


def _soften(x: np.ndarray, fps: float, tau: float = 0.06) -> np.ndarray:
    """Symmetric exponential smoothing (forward-backward), time constant ``tau`` seconds.
    Zero-phase, so edges of speech are not delayed."""
    a = math.exp(-1.0 / (tau * fps))
    y = np.empty_like(x, dtype=np.float32)
    acc = float(x[0]) if x.size else 0.0
    for i, v in enumerate(x):
        acc = a * acc + (1 - a) * float(v)
        y[i] = acc
    acc = float(y[-1]) if x.size else 0.0
    for i in range(x.size - 1, -1, -1):
        acc = a * acc + (1 - a) * float(y[i])
        y[i] = acc
    return np.maximum(y, 0.0) if x.size else y
