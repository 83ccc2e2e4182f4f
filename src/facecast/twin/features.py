"""Twin mouth features: speech audio -> per-video-frame windows of log-mel spectra.

Per video frame at time ``t`` the features are log-mel spectra (16 kHz, 25 ms window, 10 ms hop)
sampled at fixed *time* offsets ``t - context_s .. t + lookahead_s`` (``step_s`` apart), so the
same weights serve 25 and 30 fps footage: the features are defined in seconds, not in frames.
The sizes come from the mouth model's config (:class:`facecast.twin.mouth.MouthConfig`, whose
fields :class:`FeatureConfig` names), so the features and the model are always built alike.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from facecast.types import ANALYSIS_RATE

__all__ = ["SAMPLE_RATE", "FeatureConfig", "audio_features", "log_mel", "window_features"]

SAMPLE_RATE = ANALYSIS_RATE
"""Rate (Hz) of the audio the features are computed from (16 kHz)."""


class FeatureConfig(Protocol):
    """What the features read of a config (``MouthConfig`` has these fields): ``num_mels`` bands;
    STFT ``n_fft`` / ``win`` / ``hop`` in samples at SAMPLE_RATE; the window around each frame from
    ``-context_s`` to ``+lookahead_s`` seconds, ``step_s`` seconds apart (``num_offsets`` times,
    ``num_features`` = num_mels x num_offsets values)."""

    @property
    def num_mels(self) -> int: ...
    @property
    def n_fft(self) -> int: ...
    @property
    def win(self) -> int: ...
    @property
    def hop(self) -> int: ...
    @property
    def context_s(self) -> float: ...
    @property
    def lookahead_s(self) -> float: ...
    @property
    def step_s(self) -> float: ...
    @property
    def num_offsets(self) -> int: ...
    @property
    def num_features(self) -> int: ...


def _mel_filterbank(config: FeatureConfig) -> Tensor:
    """Slaney-style triangular mel filters, float32 [n_fft // 2 + 1, num_mels] (HTK mel scale)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, SAMPLE_RATE / 2, config.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(7600.0), config.num_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    tri *= (2.0 / (hi - lo))  # equal area, so bands of different widths are comparable
    return torch.from_numpy(tri.T.astype(np.float32))


def log_mel(audio16k: np.ndarray | Tensor, config: FeatureConfig) -> Tensor:
    """Log-mel spectrogram, float32 [M, num_mels]; row j is centred at ``j * hop / 16000`` s.

    Accepts a batch [B, n] too (-> [B, M, num_mels]); runs on the tensor's device."""
    x = torch.as_tensor(audio16k, dtype=torch.float32)
    window = torch.hann_window(config.win, device=x.device)
    spec = torch.stft(x, config.n_fft, config.hop, config.win, window, center=True,
                      pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [..., freq, M]
    mel = torch.matmul(power.transpose(-1, -2), _mel_filterbank(config).to(x.device))
    # 1e-8 floor ~ -80 dB re a full-scale sine per band: digital silence stays finite
    return torch.log(mel + 1e-8)


def _sample_times(times: Tensor, config: FeatureConfig) -> Tensor:
    """Times [...] (s) -> window sample times [..., num_offsets] (s)."""
    offsets = torch.linspace(-config.context_s, config.lookahead_s, config.num_offsets,
                             device=times.device, dtype=times.dtype)
    return times[..., None] + offsets


def window_features(mel: Tensor, times: Tensor, config: FeatureConfig, base: Tensor | None = None,
                    length: Tensor | None = None) -> Tensor:
    """Log-mel [M, num_mels] sampled (linear interpolation, edges clamped) at the windows around
    ``times`` [...] -> [..., num_features] laid out mel-major (num_mels x num_offsets).

    ``mel`` may hold several clips back to back: then ``base`` / ``length`` (broadcastable to
    ``times``) give each time's clip's first row and row count (clamping stays inside the clip)."""
    if base is None:
        base = torch.zeros((), dtype=torch.long, device=mel.device)
        length = torch.full((), mel.shape[0], dtype=torch.long, device=mel.device)
    pos = _sample_times(times, config) * (SAMPLE_RATE / config.hop)
    last = (length - 1)[..., None].to(pos.dtype)
    pos = torch.minimum(pos.clamp_min(0), last)
    i0 = torch.minimum(pos.floor(), (last - 1).clamp_min(0))
    w = (pos - i0)[..., None]
    i0 = i0.long() + base[..., None]
    i1 = torch.minimum(i0 + 1, base[..., None] + length[..., None] - 1)
    x = torch.lerp(mel[i0], mel[i1], w)  # [..., num_offsets, num_mels]
    return x.transpose(-1, -2).reshape(*times.shape, config.num_features)


def audio_features(audio16k: np.ndarray, fps: float, num_frames: int, config: FeatureConfig) -> np.ndarray:
    """Features of video frames ``0 .. num_frames - 1`` (frame i at time ``i / fps`` in the audio),
    float32 [num_frames, config.num_features].  Audio outside the clip reads as its edge."""
    mel = log_mel(np.asarray(audio16k, np.float32), config)
    times = torch.arange(num_frames, dtype=torch.float64) / float(fps)
    return window_features(mel, times.float(), config).numpy().astype(np.float32)
