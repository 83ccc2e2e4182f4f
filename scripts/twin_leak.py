"""Does a twin's background loop leak into its mouth? Render the first N loop frames with one
constant (mean) mouth and measure, with the face mesh, whether the rendered opening follows the
loop's own original mouth.

    .venv/bin/python scripts/twin_leak.py out/twin/obama.twin [N]

A renderer that draws only what the sketch says gives a flat opening (r near 0); one that reads
the jaw from the context around its region follows the loop (docs/quality.md, twin second round).
"""

from __future__ import annotations

import sys

import numpy as np
import torch


def main() -> None:
    from facecast.face import mouth_metrics, track_video
    from facecast.twin.generate import Twin

    torch.set_num_threads(1)
    twin = Twin.load(sys.argv[1], size=256)
    n = min(int(sys.argv[2]) if len(sys.argv) > 2 else 100, twin.num_background_frames)
    mean = twin.mouth_model.pca_mean.reshape(53, 2).numpy()
    out = twin.render_indexed(np.repeat(mean[None], n, 0), np.arange(n)).numpy()
    fps = twin.bg_fps
    gen = mouth_metrics(track_video(out, fps=fps, smooth=False)[0])["mouth_open"]
    orig = mouth_metrics(track_video(twin._bg_u8[:n].numpy(), fps=fps, smooth=False)[0])["mouth_open"]
    ok = np.isfinite(gen) & np.isfinite(orig)
    print(f"constant mouth on {n} loop frames: measured opening std {np.nanstd(gen):.4f} IOD "
          f"(the loop's own: {np.nanstd(orig):.4f}); r with the loop's own mouth {np.corrcoef(gen[ok], orig[ok])[0, 1]:.3f}")


if __name__ == "__main__":
    main()
