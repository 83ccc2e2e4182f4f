"""What the sound says about the mouth, per video frame: the cues dub's per-speaker mouth model
(dubbing.learned) regresses this speaker's lip gap and width on.

Three blocks, each a window of +-CONTEXT_S around the frame's time (OFFSETS_S, in seconds, so
25 and 30 fps footage read alike; edges held):

    sound    log-mel spectra (MELS bands, 25 ms window, 10 ms hop) of the 16 kHz sound, smoothed
             along time (MEL_SMOOTH_S) so that the samples 40 ms apart each stand for their stretch
    phones   per-phone-class coverage of the frame (PHONE_GROUPS: lip closures, lip-teeth,
             rounded, open vowels ...), the mean of the recognised phones and the recognised
             words' phones (Speech.phones / alt_phones): what the phone model reads, before its
             hand-made visemes
    motion   the phone-driven motion model's own mouth (effective jaw opening, lip spread less
             rounding), the loudness and speech/silence

    feature_blocks(...) -> {"sound": [n, MELS x W], "phones": [n, classes x W], "motion": [n, 4 x W]}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import ANALYSIS_RATE, Speech
from .calibrate import model_mouth

__all__ = ["BLOCKS", "CONTEXT_S", "MEL_SMOOTH_S", "MELS", "OFFSETS_S", "PHONE_GROUPS", "feature_blocks", "phone_coverage"]

CONTEXT_S = 0.2
"""Seconds of sound before and after each frame the cues read (the mouth anticipates by up to
~0.2 s and lags by less)."""
STEP_S = 0.04
OFFSETS_S = np.round(np.arange(-CONTEXT_S, CONTEXT_S + 1e-9, STEP_S), 6)
"""Where around a frame's time the cues are sampled (s)."""
MELS = 32
"""log-mel bands of the sound block."""
MEL_SMOOTH_S = 0.02
"""Gaussian smoothing (sigma, s) of the log-mel spectra along time before they are sampled at
OFFSETS_S: a sample then reads the ~40 ms around it, not one 25 ms window (link 1 on the 12
Obama pairs, best of lags -1..+1: +0.003 to +0.004 on the three-clip pairs and +0.005 to +0.006
on the obama_en pairs, alike with linear, kernel or both kinds of members of dubbing.learned;
docs/quality.md, fourth round)."""
BLOCKS = ("sound", "phones", "motion")

PHONE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("SIL",), ("P", "B", "M"), ("F", "V"), ("TH", "DH"), ("T", "D", "N", "L"), ("S", "Z"),
    ("SH", "ZH", "CH", "JH"), ("K", "G", "NG"), ("R", "ER"), ("W", "UW", "UH"), ("OW", "OY", "AO", "AW"),
    ("AA", "AE", "AH", "AY"), ("EH", "EY"), ("IH", "IY", "Y"), ("HH",))
"""ARPAbet phones grouped by what the lips and jaw do (unknown phones count as T/D/N/L)."""
_CLASS = {p: i for i, group in enumerate(PHONE_GROUPS) for p in group}
_OTHER = _CLASS["T"]
_SUBSTEPS = 4


@dataclass(frozen=True)
class _MelConfig:
    """twin.features' FeatureConfig for the sound block."""

    num_mels: int = MELS
    n_fft: int = 512
    win: int = 400
    hop: int = 160
    context_s: float = CONTEXT_S
    lookahead_s: float = CONTEXT_S
    step_s: float = STEP_S

    @property
    def num_offsets(self) -> int:
        return len(OFFSETS_S)

    @property
    def num_features(self) -> int:
        return self.num_mels * self.num_offsets


def _timeline(spans, first_frame: int, n: int, fps: float) -> np.ndarray:
    x = np.zeros((n * _SUBSTEPS, len(PHONE_GROUPS)), np.float32)
    t = (first_frame + (np.arange(n * _SUBSTEPS) + 0.5) / _SUBSTEPS) / fps
    for p in spans:
        a, b = np.searchsorted(t, [p.start, p.end])
        if b > a:
            x[a:b, _CLASS.get(p.phone, _OTHER)] = 1.0
    x = x.reshape(n, _SUBSTEPS, -1).mean(1)
    x[:, 0] += 1.0 - np.clip(x.sum(1), 0.0, 1.0)  # what no phone covers is silence
    return x


def phone_coverage(speech: Speech) -> np.ndarray:
    """float32 [n, len(PHONE_GROUPS)]: the share of each frame of ``speech`` each phone class
    covers, the mean of its two phone timelines (phones, and alt_phones where there are some)."""
    n = len(speech.energy)
    a = _timeline(speech.phones, speech.first_frame, n, speech.fps)
    if not speech.alt_phones:
        return a
    return (a + _timeline(speech.alt_phones, speech.first_frame, n, speech.fps)) / 2


def around(x: np.ndarray, fps: float) -> np.ndarray:
    """[n, k] per-frame values -> [n, k x len(OFFSETS_S)]: each sampled at the frame's time +
    each offset (linear interpolation, edges held), offset-major."""
    n = len(x)
    if n == 0:
        return np.zeros((0, x.shape[1] * len(OFFSETS_S)), np.float32)
    t = np.arange(n, dtype=np.float64)
    out = []
    for o in OFFSETS_S:
        pos = np.clip(t + o * fps, 0, n - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        w = (pos - i0)[:, None]
        out.append(x[i0] * (1 - w) + x[i1] * w)
    return np.concatenate(out, 1).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """float32 [M, MELS] log-mel spectra of 16 kHz ``audio`` (row j centred at j x 10 ms)."""
    import torch

    from ..twin.features import log_mel as twin_log_mel

    cfg = _MelConfig()
    audio = np.ascontiguousarray(audio, np.float32)
    if len(audio) < cfg.win:
        audio = np.concatenate([audio, np.zeros(cfg.win - len(audio), np.float32)])
    with torch.no_grad():
        return twin_log_mel(torch.from_numpy(audio), cfg).numpy()


def sound_windows(mel: np.ndarray, start: float, first_frame: int, n: int, fps: float) -> np.ndarray:
    """float32 [n, MELS x len(OFFSETS_S)]: windows of ``mel`` (log_mel of sound starting at
    ``start`` s) around frames first_frame .. + n (frame i shown at i / fps)."""
    import torch

    from ..twin.features import window_features

    times = (torch.arange(n, dtype=torch.float64) + first_frame) / fps - start
    with torch.no_grad():
        return window_features(torch.from_numpy(np.ascontiguousarray(mel, np.float32)), times.float(),
                               _MelConfig()).numpy().astype(np.float32)


def feature_blocks(audio: np.ndarray, start: float, first_frame: int, fps: float, params: np.ndarray,
                   phones: np.ndarray, energy: np.ndarray, voiced: np.ndarray,
                   mel_mean: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The BLOCKS of n = len(params) frames from first_frame: ``audio`` 16 kHz from ``start`` s
    (it may begin earlier than the first frame: past context), ``params`` [n, P] the motion
    model's, ``phones`` [n, classes] (phone_coverage), ``energy`` / ``voiced`` [n]. The sound
    block is relative to ``mel_mean`` [MELS] (this recording's mean spectrum; None: the mean of
    ``audio``), so recordings with other levels and microphones read alike."""
    n = len(params)
    jaw, side = model_mouth(params)
    motion = np.stack([jaw, side, _fit(energy, n), _fit(voiced.astype(np.float32), n)], 1).astype(np.float32)
    from scipy.ndimage import gaussian_filter1d

    mel = log_mel(audio)
    mel = mel - (mel.mean(0) if mel_mean is None else mel_mean)
    if MEL_SMOOTH_S > 0:
        mel = gaussian_filter1d(mel, MEL_SMOOTH_S * ANALYSIS_RATE / _MelConfig.hop, axis=0, mode="nearest")
    return {"sound": sound_windows(mel, start, first_frame, n, fps),
            "phones": around(_fit(phones, n), fps), "motion": around(motion, fps)}


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """x cut or padded (last value held; zeros when empty) to n rows."""
    x = np.asarray(x, np.float32)[:n]
    if len(x) == n:
        return x
    pad = np.repeat(x[-1:], n - len(x), 0) if len(x) else np.zeros((n, *x.shape[1:]), np.float32)
    return np.concatenate([x, pad])

