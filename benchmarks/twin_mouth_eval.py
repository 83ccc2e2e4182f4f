"""Held-out evaluation of the twin mouth model (facecast.twin.mouth) on prepared footage.

Protocol: train on everything in ``mouthdata.npz`` except the last 20 % of clip 1
(styletalk_obama_clip2, frames >= 0.8 * its length, plus a ``--guard`` of frames before them so no
training window's labels touch the held-out part); evaluate on that held-out part.

Metrics on the held-out frames: aperture (mean inner-lip gap) Pearson r at lag 0 and the best lag
in -5..+5 frames (positive = prediction late), mouth-width r, landmark RMSE (crop units and
pixels of a 320-px crop).  Baselines: the mean mouth (RMSE only), loudness alone (RMS envelope,
linear fit of aperture on the training frames), and a ridge regression on the model's own
features (so we see what the network adds beyond a linear read-out).

    .venv/bin/python benchmarks/twin_mouth_eval.py [--data out/twin/mouthdata.npz] [--seeds 0 1]

When ``--data`` does not exist it is made first from the four Obama clips in ../shared/media/video
(face tracking + ``facecast.twin.prepare``, ~40 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
import torch

from facecast.twin.features import audio_features
from facecast.twin.mouth import MouthConfig, aperture, mouth_width, predict_mouth, train_mouth

HOLD_CLIP = 1
MAX_LAG = 5


def lagged_r(pred: np.ndarray, real: np.ndarray, max_lag: int = MAX_LAG) -> tuple[float, float, int]:
    """(r at lag 0, best r, best lag); lag L correlates pred[t + L] with real[t] (L > 0: late),
    as `facecast eval` measures it."""
    from facecast.quality.metrics import lagged_corr

    lags, r = lagged_corr(pred, real, max_lag)
    i = int(np.nanargmax(r))
    return float(r[lags == 0][0]), float(r[i]), int(lags[i])


def rms_envelope(audio: np.ndarray, fps: float, n: int, win_s: float = 0.04) -> np.ndarray:
    """RMS of ``win_s`` of audio centred on each frame time -> [n]."""
    half = int(win_s * 16000 / 2)
    centres = (np.arange(n) / fps * 16000).astype(int)
    pad = np.pad(audio.astype(np.float64), half)
    return np.array([np.sqrt(np.mean(pad[c: c + 2 * half] ** 2)) for c in centres])


def report(name: str, pred_ap: np.ndarray, real: np.ndarray, pred_w=None, real_w=None, rmse=None) -> dict:
    r0, rb, lag = lagged_r(pred_ap, real)
    row = {"name": name, "aperture_r": round(r0, 3), "best_r": round(rb, 3), "best_lag": lag}
    if pred_w is not None:
        row["width_r"] = round(float(np.corrcoef(pred_w, real_w)[0, 1]), 3)
    if rmse is not None:
        row["rmse"] = round(rmse, 4)
        row["rmse_px320"] = round(rmse * 320, 2)
    return row


MEDIA = "../shared/media/video"
CLIPS = ("styletalk_obama_clip1_en", "styletalk_obama_clip2_en", "styletalk_obama_clip3_en", "obama_en")


def make_data(path: str) -> None:
    """Mouth landmarks (crop units), clip/frame indices, voicing and 16 kHz audio of the clips."""
    from pathlib import Path

    from facecast.twin.options import PrepOptions
    from facecast.twin.prepare import prepare, track_clip

    f = prepare([track_clip(f"{MEDIA}/{c}.mp4") for c in CLIPS], PrepOptions(crop_px=64))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mouth=f.mouth, clip=f.clip, frame=f.frame, voiced=f.voiced, segment=f.segment,
             fps=np.array([c["fps"] for c in f.clips]), names=np.array([c["path"] for c in f.clips]),
             **{f"audio{i}": c["audio"] for i, c in enumerate(f.clips)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="out/twin/mouthdata.npz")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guard", type=int, default=8, help="frames before the held-out part left out of training")
    ap.add_argument("--config", default="{}", help="JSON overrides of MouthConfig fields")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default); "
                    "use 1 when another job shares the cores: oversubscribed OpenMP is ~10x slower")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from pathlib import Path

    if not Path(args.data).exists():
        make_data(args.data)
    d = np.load(args.data)
    fps = d["fps"]
    config = replace(MouthConfig(), **json.loads(args.config))
    clips, held = [], None
    for c in range(len(fps)):
        sel = d["clip"] == c
        n = int(d["frame"][sel].max()) + 1
        mouth = np.full((n, 53, 2), np.nan, np.float32)
        mouth[d["frame"][sel]] = d["mouth"][sel]
        # No training window may span a cut (its velocity term would learn the jump): blank the
        # first frame of a segment that directly follows another one.
        seg = np.full(n, -1)
        seg[d["frame"][sel]] = d["segment"][sel]
        mouth[1:][(seg[1:] != seg[:-1]) & (seg[:-1] >= 0)] = np.nan
        audio = d[f"audio{c}"]
        if c == HOLD_CLIP:
            start = int(np.ceil(0.8 * n))
            held = (audio, float(fps[c]), mouth[start:].copy(), start, n)
            mouth[max(0, start - args.guard):] = np.nan
        clips.append((audio, float(fps[c]), mouth))
    audio_h, fps_h, real, start, n_h = held
    ok = ~np.isnan(real).any((1, 2))
    real_ap, real_w = aperture(real)[ok], mouth_width(real)[ok]
    print(f"held out: clip {HOLD_CLIP} frames {start}..{n_h - 1} ({ok.sum()} labelled, {ok.sum() / fps_h:.1f} s)")

    rows = []
    # Mean mouth and loudness baselines (fit on training frames).
    train_mouths = np.concatenate([m[~np.isnan(m).any((1, 2))] for _, _, m in clips])
    mean_shape = train_mouths.mean(0)
    rmse_mean = float(np.sqrt(np.mean((real[ok] - mean_shape) ** 2)))
    xs, ys = [], []
    for audio, f, m in clips:
        good = ~np.isnan(m).any((1, 2))
        env = rms_envelope(audio, f, len(m))
        xs.append(env[good])
        ys.append(aperture(m[good]))
    env_h = rms_envelope(audio_h, fps_h, n_h)[start:][ok]
    for label, tf in (("loudness (RMS)", lambda e: e), ("loudness (dB)", lambda e: 20 * np.log10(e + 1e-4))):
        a, b = np.polyfit(tf(np.concatenate(xs)), np.concatenate(ys), 1)
        pred = a * tf(env_h) + b
        row = report(label, pred, real_ap)
        row["aperture_rmse"] = round(float(np.sqrt(np.mean((pred - real_ap) ** 2))), 4)
        rows.append(row)
    rows.append({"name": "mean mouth", "rmse": round(rmse_mean, 4), "rmse_px320": round(rmse_mean * 320, 2)})

    # Ridge regression on the model's features (linear read-out of the same audio window).
    F, Y = [], []
    for audio, f, m in clips:
        good = ~np.isnan(m).any((1, 2))
        F.append(audio_features(audio, f, len(m), config)[good])
        Y.append(m[good].reshape(good.sum(), -1))
    F, Y = np.concatenate(F).astype(np.float64), np.concatenate(Y).astype(np.float64)
    mu, sd = F.mean(0), F.std(0) + 1e-3
    Fz = (F - mu) / sd
    ym = Y.mean(0)
    lam = 1000.0
    W = np.linalg.solve(Fz.T @ Fz + lam * np.eye(Fz.shape[1]), Fz.T @ (Y - ym))
    Fh = (audio_features(audio_h, fps_h, n_h, config)[start:][ok] - mu) / sd
    pr = (Fh @ W + ym).reshape(-1, 53, 2)
    rows.append(report(f"ridge on features (lambda {lam:g})", aperture(pr), real_ap, mouth_width(pr), real_w,
                       float(np.sqrt(np.mean((pr - real[ok]) ** 2)))))

    for seed in args.seeds:
        model, stats = train_mouth(clips, config, steps=args.steps,
                                   device=args.device, seed=seed)
        pred = predict_mouth(model, audio_h, fps_h, n_h)[start:][ok]
        row = report(f"mouth model seed {seed}", aperture(pred), real_ap, mouth_width(pred), real_w,
                     float(np.sqrt(np.mean((pred - real[ok]) ** 2))))
        row["train_s"] = round(stats["seconds"], 1)
        row["loss"] = f"{stats['loss_first']:.2e} -> {stats['loss_last']:.2e}"
        rows.append(row)
        if len(args.seeds) > 1:
            print(json.dumps(row), flush=True)

    print(f"config: {json.dumps(config.to_dict())}")
    print(f"look-ahead: {config.lookahead_s:.2f} s audio window + {config.smooth_frames} frame(s) temporal conv")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
