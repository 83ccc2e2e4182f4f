"""Retrain only the mouth model of a .twin (same footage and holdout, the current MouthConfig
defaults, then the gain calibration, exactly as `train_twin` does) and write a new .twin. For
trying a mouth-model change without re-training the renderer (which does not depend on it).

    .venv/bin/python scripts/twin_retrain_mouth.py out/twin/obama.twin out/twin/obama_new.twin \
        --tracks out/twin/obama_tracks.npz --media ../shared/media/video \
        --holdout styletalk_obama_clip2_en.mp4:0.2
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--tracks", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--holdout", default=None, help="NAME:FRACTION, as given to `twin train --holdout`")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folds", type=int, default=3)
    args = ap.parse_args()

    from facecast.twin.pipeline import fit_mouth, holdout_mask, mouth_clips
    from facecast.twin.file import load_twin, save_twin
    from facecast.twin.options import PrepOptions
    from facecast.twin.prepare import load_tracks, prepare

    torch.set_num_threads(2)
    data = load_twin(args.src)
    footage = prepare(load_tracks(args.tracks, media_dir=args.media), PrepOptions(crop_px=64))  # crop units only
    hold = None
    if args.holdout:
        name, frac = args.holdout.rsplit(":", 1)
        hold = (name, float(frac))
    t = time.perf_counter()
    model, stats = fit_mouth(mouth_clips(footage, ~holdout_mask(footage, hold)), folds=args.folds,
                             device=args.device, seed=0)
    print(f"mouth + calibration {time.perf_counter() - t:.1f} s, gain {model.config.gain:.3f}")
    data.mouth_state = model.state_dict()
    data.config["mouth"] = model.config.to_dict()
    data.config["training"]["mouth"] = stats
    print("sha256", save_twin(args.dst, data))


if __name__ == "__main__":
    main()
