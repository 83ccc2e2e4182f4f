"""Twin mouth model: speech audio -> the person's mouth landmarks, one set per video frame.

Input is audio only (no transcript, no phones), so it works on any voice source, TTS included.
Per video frame at time ``t`` the features are log-mel spectra (16 kHz, 25 ms window, 10 ms hop)
sampled at fixed *time* offsets ``t - context_s .. t + lookahead_s`` (``step_s`` apart), so the
same weights serve 25 and 30 fps footage: the features are defined in seconds, not in frames
(``facecast.twin.features``).

The network (:class:`MouthModel`) has two parts:

* a per-frame encoder over the audio window (1-D convolutions along the offsets, mels as
  channels), which sees ``context_s`` of the past and ``lookahead_s`` of the future;
* a small temporal convolution across neighbouring video frames (``smooth_frames`` on each side),
  which smooths the trajectory; it adds ``smooth_frames / fps`` seconds of look-ahead.

It predicts ``num_pca`` coefficients of a PCA of the person's landmarks (mean and basis are
buffers), which keeps the output on the person's own mouth shapes and the head small.  A few
such networks (``ensemble``) are averaged.

With ~1.5 minutes of footage the model overfits easily (train aperture r ~0.85, held-out ~0.6 for
one plain net); what measurably helped on held-out speech: dropout 0.4, SpecAugment-style masks
(mel bands, window offsets), a 2-frame temporal conv and the ensemble.  See
``benchmarks/twin_mouth_eval.py`` for the protocol and numbers.

Everything needed to rebuild the module is in :class:`MouthConfig` (JSON-able) plus
``state_dict()`` (weights, PCA basis, feature standardisation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from facecast.twin.features import log_mel, window_features
from facecast.twin.points import NUM_POINTS

__all__ = [
    "MouthConfig",
    "MouthModel",
    "aperture",
    "calibrate_gain",
    "mouth_width",
    "predict_mouth",
    "train_mouth",
]

# Inner-lip pairs used for the aperture: inner upper chain point k (index 20 + k) sits above inner
# lower chain point k (LIPS_INNER_LOWER[1:-1] starts at index 31, so point k is 30 + k); the
# central five (k = 3..7) are the ones facecast.face uses for its mouth-open measure.
_APERTURE_UPPER = tuple(20 + k for k in range(3, 8))
_APERTURE_LOWER = tuple(30 + k for k in range(3, 8))
_CORNERS = (0, 10)  # outer lip corners (LIPS_OUTER_UPPER[0], [-1])


@dataclass(frozen=True)
class MouthConfig:
    """Every shape and hyper-parameter of a mouth model (stored as JSON next to the weights).

    Features: ``num_mels`` log-mel bands (``n_fft``/``win``/``hop`` samples at 16 kHz) sampled at
    ``num_offsets`` times from ``-context_s`` to ``+lookahead_s`` around each frame.  Total
    look-ahead of the model is ``lookahead_s + smooth_frames / fps``.
    Network: ``ensemble`` averaged members, each with ``channels`` per-offset spectral channels,
    a ``hidden`` per-frame embedding, a temporal conv over ``smooth_frames`` frames on each side
    and ``num_pca`` outputs.
    Training: ``steps`` Adam steps of ``batch`` windows of ``seq_frames`` frames, learning rate
    ``lr`` (cosine decay), ``weight_decay``, ``dropout``; ``velocity_weight`` weights the
    frame-to-frame velocity error, ``aperture_weight`` an extra error term on the inner-lip gap
    (see :func:`aperture`), ``width_weight`` one on the corner-to-corner width (:func:`mouth_width`);
    ``gain_db`` / ``noise_db`` are augmentation ranges (random
    gain +-gain_db, white noise at ``noise_db`` dB below the clip's RMS and quieter);
    ``time_jitter`` trains at random sub-frame times with interpolated landmarks;
    ``freq_mask`` / ``time_mask``: SpecAugment-style masks of up to that many mel bands / window
    offsets per training sequence (set to the feature mean).
    Output: ``gain`` scales the predicted deviation from the mean mouth (set by
    :func:`calibrate_gain` from held-out folds of the training footage; 1 = as fitted).
    """

    num_mels: int = 80
    n_fft: int = 512
    win: int = 400
    hop: int = 160
    context_s: float = 0.1
    lookahead_s: float = 0.2
    step_s: float = 0.02
    channels: int = 64
    hidden: int = 128
    smooth_frames: int = 2
    num_pca: int = 12
    dropout: float = 0.4
    steps: int = 800
    batch: int = 16
    seq_frames: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    velocity_weight: float = 1.0
    aperture_weight: float = 20.0
    width_weight: float = 20.0
    gain_db: float = 6.0
    noise_db: float = 30.0
    time_jitter: bool = True
    freq_mask: int = 16
    time_mask: int = 4
    ensemble: int = 3
    gain: float = 1.0

    @property
    def num_offsets(self) -> int:
        return int(round((self.context_s + self.lookahead_s) / self.step_s)) + 1

    @property
    def num_features(self) -> int:
        return self.num_mels * self.num_offsets

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MouthConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# ---------------------------------------------------------------------------------------------
# Model


class _Member(nn.Module):
    """One network of the ensemble: standardised features [N, offsets, mels] of B sequences of
    T frames -> unit-variance PCA coefficients [B, T, num_pca]."""

    def __init__(self, config: MouthConfig):
        super().__init__()
        c, m = config.channels, config.num_mels
        # Per-frame encoder: the same small projection of each offset's spectrum (mels -> channels),
        # then one layer over the whole window (where timing within the window is learnt).  Plain
        # matmuls: an order of magnitude faster than Conv1d on CPU at these sizes.
        self.spectral = nn.Sequential(nn.Dropout(config.dropout * 0.5), nn.Linear(m, c), nn.GELU())
        self.embed = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(c * config.num_offsets, config.hidden),
                                   nn.GELU())
        # Across video frames: lets neighbouring frames agree (smooth trajectories).
        self.temporal = nn.Conv1d(config.hidden, config.hidden, 2 * config.smooth_frames + 1,
                                  padding=config.smooth_frames)
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, config.num_pca))

    def forward(self, x: Tensor, b: int, t: int) -> Tensor:
        h = self.embed(self.spectral(x).flatten(1)).reshape(b, t, -1)
        h = h + self.temporal(h.transpose(1, 2)).transpose(1, 2)
        return self.head(h)


class MouthModel(nn.Module):
    """[B, T, F] window features of consecutive video frames -> [B, T, 53, 2] landmarks.

    ``config.ensemble`` independent small networks (own initialisation, own loss in training)
    whose coefficients are averaged: with ~1.5 minutes of footage a single net's error is mostly
    variance (which words it happened to fit), and averaging a few is the cheapest cure.
    Buffers (filled by :func:`train_mouth`): ``feat_mean``/``feat_std`` [F] feature
    standardisation; ``pca_mean`` [106], ``pca_basis`` [num_pca, 106] (orthonormal rows),
    ``pca_scale`` [num_pca] (std of each coefficient; the nets predict unit-variance ones).
    """

    def __init__(self, config: MouthConfig):
        super().__init__()
        self.config = config
        n_out = NUM_POINTS * 2
        self.register_buffer("feat_mean", torch.zeros(config.num_features))
        self.register_buffer("feat_std", torch.ones(config.num_features))
        self.register_buffer("pca_mean", torch.zeros(n_out))
        self.register_buffer("pca_basis", torch.zeros(config.num_pca, n_out))
        self.register_buffer("pca_scale", torch.ones(config.num_pca))
        self.members = nn.ModuleList(_Member(config) for _ in range(config.ensemble))

    def member_coefficients(self, features: Tensor) -> Tensor:
        """[B, T, F] -> each member's unit-variance PCA coefficients [ensemble, B, T, num_pca]."""
        b, t, f = features.shape
        x = (features - self.feat_mean) / self.feat_std
        x = x.reshape(b * t, self.config.num_mels, self.config.num_offsets).transpose(1, 2)
        return torch.stack([member(x, b, t) for member in self.members])

    def coefficients(self, features: Tensor) -> Tensor:
        """[B, T, F] -> ensemble-mean unit-variance PCA coefficients [B, T, num_pca]."""
        return self.member_coefficients(features).mean(0)

    def decode(self, coefficients: Tensor) -> Tensor:
        """[B, T, num_pca] -> [B, T, 53, 2]."""
        flat = (coefficients * (self.pca_scale * self.config.gain)) @ self.pca_basis + self.pca_mean
        return flat.reshape(*coefficients.shape[:-1], NUM_POINTS, 2)

    def forward(self, features: Tensor) -> Tensor:
        return self.decode(self.coefficients(features))


# ---------------------------------------------------------------------------------------------
# Training


def _interp_rows(rows: Tensor, pos: Tensor, base: Tensor) -> Tensor:
    """Landmark rows [N, 106] at fractional frame positions ``pos`` [...] of the clip starting at
    row ``base`` -> [..., 106], linear interpolation.  Callers only ask for positions whose both
    neighbours are labelled (or whole frames, where the next row is not used: it may be NaN)."""
    i0 = pos.floor()
    w = (pos - i0)[..., None]
    i0 = i0.long() + base
    a = rows[i0]
    b = rows[(i0 + 1).clamp(max=len(rows) - 1)]
    return torch.where(w > 0, torch.lerp(a, b, w), a)


def _mask(x: Tensor, fill: Tensor, config: MouthConfig, gen: torch.Generator) -> Tensor:
    """SpecAugment on window features [B, L, F]: per sequence, one band of up to ``freq_mask`` mels
    and one run of up to ``time_mask`` offsets (same for all its frames) set to ``fill`` [F]."""
    b = x.shape[0]
    m, o = config.num_mels, config.num_offsets
    mels = torch.arange(m)[None]
    offs = torch.arange(o)[None]
    fw = torch.randint(0, config.freq_mask + 1, (b, 1), generator=gen)
    f0 = (torch.rand(b, 1, generator=gen) * (m - fw + 1)).long()
    tw = torch.randint(0, config.time_mask + 1, (b, 1), generator=gen)
    t0 = (torch.rand(b, 1, generator=gen) * (o - tw + 1)).long()
    band = (mels >= f0) & (mels < f0 + fw)  # [B, m]
    run = (offs >= t0) & (offs < t0 + tw)  # [B, o]
    mask = (band[:, :, None] | run[:, None, :]).reshape(b, 1, m * o).to(x.device)
    return torch.where(mask, fill, x)


def train_mouth(
    clips: list[tuple[np.ndarray, float, np.ndarray]],
    config: MouthConfig = MouthConfig(),
    *,
    steps: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[MouthModel, dict]:
    """Fit a mouth model to one person's footage.

    clips: (audio16k float32 [n], fps, mouth float32 [T, 53, 2]) per clip; rows of ``mouth`` that
        contain NaN are ignored (held-out frames, frames without a face, across cuts).
    steps: overrides ``config.steps``.  progress(step, steps, loss) is called every 50 steps.
    Returns the model (eval mode, on ``device``) and stats: seconds, steps, frames, loss_first /
    loss_last (mean of the first / last 50 steps, landmark MSE in crop units^2), pca_explained.
    """
    t_start = time.perf_counter()
    config = replace(config, gain=1.0)  # fitted as is; calibrate_gain sets the output gain after
    steps = config.steps if steps is None else int(steps)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same batches on any device
    torch.manual_seed(seed)

    L = config.seq_frames
    mels, noise, mouths, fpss, rms_db = [], [], [], [], []
    for ci, (audio, fps, mouth) in enumerate(clips):
        audio = np.asarray(audio, np.float32)
        mels.append(log_mel(torch.from_numpy(audio).to(dev), config))
        # White noise of unit variance through the same front end (added in the power domain
        # at train time: a cheap stand-in for re-running the STFT on noisy audio).
        g = torch.Generator().manual_seed(seed * 1000 + ci)
        noise.append(log_mel(torch.randn(len(audio), generator=g).to(dev), config))
        rms_db.append(10 * math.log10(float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12))
        mouths.append(torch.from_numpy(np.asarray(mouth, np.float32).reshape(len(mouth), -1)).to(dev))
        fpss.append(float(fps))
    labelled = [~torch.isnan(m).any(1) for m in mouths]
    valid_rows = torch.cat([m[ok] for m, ok in zip(mouths, labelled)])
    if len(valid_rows) < 2 * L:
        raise ValueError(f"too few labelled frames to train the mouth model: {len(valid_rows)}")

    model = MouthModel(config).to(dev)
    # PCA of the person's landmarks (float64 for a clean basis)
    rows = valid_rows.double()
    mean = rows.mean(0)
    _, s, vt = torch.linalg.svd(rows - mean, full_matrices=False)
    var = s.square() / (len(rows) - 1)
    model.pca_mean.copy_(mean.float())
    model.pca_basis.copy_(vt[: config.num_pca].float())
    model.pca_scale.copy_(var[: config.num_pca].sqrt().float())
    explained = float(var[: config.num_pca].sum() / var.sum())
    # Feature standardisation over every labelled frame (per mel band and offset).
    feats = torch.cat([
        window_features(mel, torch.arange(len(m), device=dev, dtype=torch.float32) / f, config)[ok]
        for mel, m, f, ok in zip(mels, mouths, fpss, labelled)
    ])
    model.feat_mean.copy_(feats.mean(0))
    model.feat_std.copy_(feats.std(0).clamp_min(1e-3))
    del feats

    # All clips back to back, so a batch is gathered with one indexing op.
    mel_base = torch.tensor(np.cumsum([0] + [len(m) for m in mels[:-1]]), device=dev)
    mel_len = torch.tensor([len(m) for m in mels], device=dev)
    row_base = torch.tensor(np.cumsum([0] + [len(m) for m in mouths[:-1]]), device=dev)
    all_mel, all_noise, all_rows = torch.cat(mels), torch.cat(noise), torch.cat(mouths)
    fps_t = torch.tensor(fpss, device=dev)
    rms_t = torch.tensor(rms_db, device=dev)
    # Window starts (clip, frame) whose L frames are labelled; ``can_jitter``: frame s0 + L too,
    # so a sub-frame shift of the window still interpolates between labelled frames.
    starts, can_jitter = [], []
    for ci, ok in enumerate(labelled):
        ok = ok.cpu().numpy().astype(np.int64)
        run = np.convolve(ok, np.ones(L, np.int64), "valid")  # labelled frames in [s, s + L)
        for s0 in np.nonzero(run == L)[0]:
            starts.append((ci, int(s0)))
            can_jitter.append(bool(s0 + L < len(ok) and ok[s0 + L]))
    if not starts:
        raise ValueError("no run of labelled frames as long as config.seq_frames")
    starts_t = torch.tensor(starts, dtype=torch.long)
    can_jitter_t = torch.tensor(can_jitter)
    weights = 1.0 / torch.tensor(fpss, dtype=torch.float64)[starts_t[:, 0]]  # sample by seconds, not frames

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / max(steps, 1))) * min(1.0, (i + 1) / 50))
    model.train()
    losses = []
    B = config.batch
    ap_upper = torch.tensor([2 * i + 1 for i in _APERTURE_UPPER], device=dev)  # y of flattened rows
    ap_lower = torch.tensor([2 * i + 1 for i in _APERTURE_LOWER], device=dev)
    ln10 = math.log(10) / 10  # dB -> natural log of power
    for step in range(steps):
        # All randomness from the CPU generator, then moved: identical batches on CPU and CUDA.
        idx = torch.multinomial(weights, B, replacement=True, generator=gen)
        pick = starts_t[idx]
        jitter = torch.rand(B, generator=gen) * 0.999
        gains = (torch.rand(B, generator=gen) * 2 - 1) * config.gain_db
        noise_on = torch.rand(B, generator=gen) < 0.5
        noise_lvl = torch.rand(B, generator=gen) * 20
        jitter = jitter * (can_jitter_t[idx] & config.time_jitter)
        ci, s0 = pick[:, 0].to(dev), pick[:, 1].to(dev)
        pos = s0[:, None] + jitter.to(dev)[:, None] + torch.arange(L, device=dev)  # [B, L] frame positions
        times = pos / fps_t[ci][:, None]
        base, length = mel_base[ci][:, None], mel_len[ci][:, None]
        x = window_features(all_mel, times, config, base, length)
        if config.noise_db > 0:
            nz = window_features(all_noise, times, config, base, length)
            lvl = (rms_t[ci] - config.noise_db - noise_lvl.to(dev)) * ln10
            x = torch.where(noise_on.to(dev)[:, None, None], torch.logaddexp(x, nz + lvl[:, None, None]), x)
        x = x + (gains.to(dev) * ln10)[:, None, None]  # gain: a shift of every log band
        if config.freq_mask or config.time_mask:
            x = _mask(x, model.feat_mean, config, gen)
        y = _interp_rows(all_rows, pos, row_base[ci][:, None])
        # Each member is fitted on its own (not their mean): keeps them independent, like seeds.
        pred = model.decode(model.member_coefficients(x)).reshape(config.ensemble, B, L, -1)
        loss = (pred - y).square().mean()
        if config.velocity_weight > 0:
            vel = (pred.diff(dim=-2) - y.diff(dim=-2)).square().mean()
            loss = loss + config.velocity_weight * vel
        if config.aperture_weight > 0:
            gap = pred[..., ap_lower] - pred[..., ap_upper] - (y[..., ap_lower] - y[..., ap_upper])
            loss = loss + config.aperture_weight * gap.mean(-1).square().mean()
        if config.width_weight > 0:
            loss = loss + config.width_weight * (_width(pred) - _width(y)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step % 50 == 0 or step == steps - 1):
            progress(step, steps, losses[-1])
    model.eval()
    k = min(50, max(1, len(losses) // 4))  # first / last quarter for short runs
    stats = {
        "seconds": time.perf_counter() - t_start,
        "steps": steps,
        "frames": int(len(valid_rows)),
        "loss_first": float(np.mean(losses[:k])) if losses else float("nan"),
        "loss_last": float(np.mean(losses[-k:])) if losses else float("nan"),
        "pca_explained": explained,
    }
    return model, stats


def calibrate_gain(
    clips: list[tuple[np.ndarray, float, np.ndarray]],
    config: MouthConfig = MouthConfig(),
    *,
    folds: int = 3,
    steps: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    max_gain: float = 1.6,
) -> tuple[float, dict]:
    """How much a model fitted to this footage under-articulates on speech it did not see.

    A least-squares predictor regresses towards the mean: on new speech its mouth opens less than
    the person's (measured on held-out Obama speech: 0.73x the real lip-gap spread, 1.0x on the
    training speech). Here every clip is cut into ``folds`` contiguous parts; fold k trains on
    all but part k of every clip and predicts part k. The gain is std(real lip gap) / std(predicted
    lip gap) over all the predicted parts, clipped to [1, max_gain]. Costs ``folds`` trainings.
    A fold whose training part is too short is skipped; with none left the gain is 1.
    Returns (gain, stats).
    """
    real_all, pred_all = [], []
    for k in range(folds):
        train_clips, held = [], []
        for audio, fps, mouth in clips:
            n = len(mouth)
            a, b = n * k // folds, n * (k + 1) // folds
            m = np.array(mouth, np.float32, copy=True)
            m[a:b] = np.nan
            train_clips.append((audio, fps, m))
            held.append((audio, fps, mouth, a, b))
        try:
            model, _ = train_mouth(train_clips, config, steps=steps, device=device, seed=seed + 1 + k)
        except ValueError:  # too little footage left for this fold: it measures nothing
            continue
        for audio, fps, mouth, a, b in held:
            ok = ~np.isnan(mouth[a:b]).any((1, 2))
            if ok.sum() < 2:
                continue
            pred = predict_mouth(model, audio, fps, b)[a:b]
            real_all.append(aperture(mouth[a:b][ok]))
            pred_all.append(aperture(pred[ok]))
    if not real_all:
        return 1.0, {"folds": folds, "frames": 0, "std_ratio": None, "aperture_r": None,
                     "note": "too little footage to hold a part out: gain left at 1"}
    real, pred = np.concatenate(real_all), np.concatenate(pred_all)
    ratio = float(real.std() / max(pred.std(), 1e-9))
    r = float(np.corrcoef(real, pred)[0, 1]) if len(real) > 2 else float("nan")
    return float(np.clip(ratio, 1.0, max_gain)), {"folds": folds, "frames": int(len(real)), "std_ratio": ratio,
                                                   "aperture_r": r}


# ---------------------------------------------------------------------------------------------
# Inference and measures


@torch.no_grad()
def predict_mouth(model: MouthModel, audio16k: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Landmarks of video frames 0 .. num_frames - 1 of ``audio16k`` -> float32 [num_frames, 53, 2]."""
    dev = model.pca_mean.device
    mel = log_mel(torch.as_tensor(np.asarray(audio16k, np.float32), device=dev), model.config)
    times = torch.arange(num_frames, device=dev, dtype=torch.float64) / float(fps)
    feats = window_features(mel, times.float(), model.config)
    was_training = model.training
    model.eval()
    out = model(feats[None])[0]
    model.train(was_training)
    return out.float().cpu().numpy()


def _width(rows: Tensor) -> Tensor:
    """Corner-to-corner width of flattened landmark rows [..., 106] -> [...]."""
    a, b = rows[..., 2 * _CORNERS[0]: 2 * _CORNERS[0] + 2], rows[..., 2 * _CORNERS[1]: 2 * _CORNERS[1] + 2]
    return (b - a).square().sum(-1).add(1e-12).sqrt()


def aperture(mouth: np.ndarray) -> np.ndarray:
    """Inner-lip gap [T, 53, 2] -> [T]: mean of lower.y - upper.y over the central 5 inner pairs."""
    mouth = np.asarray(mouth)
    return (mouth[:, list(_APERTURE_LOWER), 1] - mouth[:, list(_APERTURE_UPPER), 1]).mean(1)


def mouth_width(mouth: np.ndarray) -> np.ndarray:
    """Distance between the outer lip corners [T, 53, 2] -> [T]."""
    mouth = np.asarray(mouth)
    return np.linalg.norm(mouth[:, _CORNERS[1]] - mouth[:, _CORNERS[0]], axis=-1)
