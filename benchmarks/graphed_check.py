"""CUDA-graph offline renderer (render.GraphedRenderer) against its CPU reference, on the GPU box.

    python benchmarks/graphed_check.py --portraits .devrun/portraits512.npz

Same portrait and motion on both sides: the CUDA graphs replay BatchRenderer's math; the CPU
runs it eagerly with the GPU's grid pitch (step 2). Prints mean / p99.99 / max |diff| (0-255)
and the host time per replay against eager launches.
"""

import argparse
import time

import numpy as np
import torch

from facecast.render import BatchRenderer, GraphedRenderer
from facecast.live.loadtest import portraits_from_npz
from facecast.motion import random_motion
from facecast.options import RenderOptions
from facecast.types import MotionFrames

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True)
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args()
    p = portraits_from_npz(args.portraits)[0]
    W, H = p.image.shape[1], p.image.shape[0]
    motion = MotionFrames(random_motion(args.frames, np.random.default_rng(0)), 25.0, 0)
    gpu = GraphedRenderer(p, RenderOptions(device="cuda"))
    got = gpu.render(motion).frames.cpu().float()
    ref_engine = BatchRenderer((W, H), device="cpu", step=gpu.engine.step)
    ref_engine.add(p)
    ref = torch.cat([ref_engine.render(torch.zeros(len(c), dtype=torch.long), torch.from_numpy(c))
                     for c in np.array_split(motion.params, max(1, args.frames // 50))]).float()
    d = (got - ref).abs()
    print(f"graphed CUDA vs CPU reference, {args.frames} frames {W}x{H}: mean {d.mean():.4f} "
          f"p99.99 {torch.quantile(d.flatten()[::97], 0.9999):.1f} max {d.max():.0f}")
    eager = BatchRenderer((W, H), device="cuda")
    eager.add(p)
    ids = torch.zeros(100, dtype=torch.long)
    params = torch.from_numpy(motion.params[:100].copy())
    for name, fn in (("eager", lambda: eager.render(ids, params)), ("graphed", lambda: gpu.render(MotionFrames(motion.params[:100], 25.0, 0)))):
        fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            fn()
        host = (time.perf_counter() - t) / 20
        torch.cuda.synchronize()
        print(f"{name}: host time per 100-frame render {host * 1e3:.2f} ms")
