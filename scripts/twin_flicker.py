"""Does the twin's regenerated mouth flicker? Compare the temporal roughness of the regenerated
region in the twin's video with the same region of its background loop as filmed (a real person
speaking: real mouth motion, no generation).

    .venv/bin/python scripts/twin_flicker.py out/twin/obama.twin SPEECH [--frames 150] [--size 256]

Per frame pair, inside the regenerated region (the blend mask pasted into the frame):
  step  = mean |I[t] - I[t-1]|            (all change: motion and flicker)
  rough = mean |I[t+1] - 2 I[t] + I[t-1]|  (frame-to-frame reversals: flicker shows up here)
Printed for the twin and for the loop as filmed, and their ratio (1 = as smooth as real video).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def roughness(frames: torch.Tensor, weight: torch.Tensor) -> dict:
    """frames float [T,H,W,3], weight [T,H,W] -> mean step and second-difference in the region."""
    w = weight[..., None]
    d1 = (frames[1:] - frames[:-1]).abs()
    d2 = (frames[2:] - 2 * frames[1:-1] + frames[:-2]).abs()
    return {"step": float((d1 * w[1:]).sum() / (w[1:].sum() * 3)),
            "rough": float((d2 * w[1:-1]).sum() / (w[1:-1].sum() * 3))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("twin")
    ap.add_argument("speech")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    from facecast.audio import load_audio
    from facecast.twin.generate import Twin
    from facecast.twin.net import paste_crops

    torch.set_num_threads(2)
    twin = Twin.load(args.twin, size=args.size)
    fps = 25.0
    n = args.frames
    speech = load_audio(args.speech, sample_rate=16000).mono()
    mouth = twin.mouth(speech, fps, n)
    idx = twin.background_index(np.arange(n), fps)
    gen = twin.render_indexed(mouth, idx).float()
    # The same background frames as filmed, at the same size (the render's own resize).
    src = twin._bg_u8[torch.as_tensor(idx)].permute(0, 3, 1, 2).float().div(127.5).sub(1)
    src = torch.nn.functional.interpolate(src, size=(twin.size[1], twin.size[0]), mode="bicubic",
                                          align_corners=False).clamp(-1, 1)
    filmed = src.add(1).mul(127.5).round().clamp(0, 255).permute(0, 2, 3, 1)
    # Where the twin regenerates: its blend mask pasted into each frame.
    r = twin.render_config.size
    ones = torch.ones(n, 3, r, r)
    region = paste_crops(torch.zeros(n, 3, twin.size[1], twin.size[0]), ones, None,
                         theta=twin._theta_paste[torch.as_tensor(idx)], alpha=twin._alpha)[:, 0]
    g, f = roughness(gen, region), roughness(filmed, region)
    print(json.dumps({"frames": n, "size": list(twin.size), "twin": g, "filmed_loop": f,
                      "ratio_step": round(g["step"] / f["step"], 3), "ratio_rough": round(g["rough"] / f["rough"], 3)}))


if __name__ == "__main__":
    main()
