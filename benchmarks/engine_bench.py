"""Benchmark the batched render engine (facecast.render.BatchRenderer) on one device.

Usage: python benchmarks/engine_bench.py --portraits .devrun/portraits512.npz [--device cuda] [--out FILE.json]

Portraits come pre-framed as arrays (image + 478 landmarks), so the GPU machine needs neither
mediapipe nor the media files. Measures, with CUDA events after warm-up:
  * equivalence of the device result with the CPU reference (same inputs, float32);
  * render throughput (frames/s) for batch sizes 1..512 of mixed faces, float32 / float16 / bfloat16;
  * single-stream offline latency per 25-frame batch (the `say` path on a GPU);
  * peak VRAM.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch




def time_cuda(fn, iters):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()  # benchmark harness only: the engine itself never synchronises
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def main():
    from facecast.render import BatchRenderer
    from facecast.live.loadtest import portraits_from_npz
    from facecast.motion import random_motion as random_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    ap.add_argument("--batches", default="1,8,25,64,128,256,512")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    portraits = portraits_from_npz(args.portraits)
    W = portraits[0].image.shape[1]
    H = portraits[0].image.shape[0]
    result = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
              "torch": torch.__version__, "size": [W, H], "faces": len(portraits), "date": time.strftime("%Y-%m-%d")}

    # 1. equivalence with the CPU reference
    cpu = BatchRenderer((W, H), device="cpu", step=2)  # the GPU's grid pitch
    dev32 = BatchRenderer((W, H), device=args.device)
    for p in portraits:
        cpu.add(p)
        dev32.add(p)
    ids = torch.from_numpy(rng.integers(0, len(portraits), 16))
    params = torch.from_numpy(random_params(16, rng))
    ref = cpu.render(ids, params).float()
    got = dev32.render(ids, params).cpu().float()
    diff = (ref - got).abs()
    result["equivalence_fp32"] = {"mean_abs": float(diff.mean()), "p99.99": float(torch.quantile(diff.flatten()[::5], 0.9999)),
                                  "max": float(diff.max())}
    print("equivalence fp32 vs CPU:", result["equivalence_fp32"], flush=True)

    # 2. throughput per precision and batch size
    result["throughput"] = []
    for dtype in (() if args.skip_throughput else (torch.float32, torch.float16, torch.bfloat16)):
        eng = BatchRenderer((W, H), device=args.device, dtype=dtype)
        for p in portraits:
            eng.add(p)
        if dtype != torch.float32:
            got = eng.render(ids, params).cpu().float()
            d = (ref - got).abs()
            result[f"equivalence_{str(dtype).split('.')[-1]}"] = {"mean_abs": float(d.mean()), "max": float(d.max())}
        for n in [int(x) for x in args.batches.split(",")]:
            ids_n = torch.from_numpy(rng.integers(0, len(portraits), n)).to(args.device)
            par_n = torch.from_numpy(random_params(n, rng)).to(args.device)
            for _ in range(3):
                eng.render(ids_n, par_n)
            torch.cuda.reset_peak_memory_stats()
            ms = time_cuda(lambda: eng.render(ids_n, par_n), iters=10 if n >= 128 else 20)
            row = {"dtype": str(dtype).split(".")[-1], "batch": n, "ms": ms, "fps": n / ms * 1000,
                   "peak_vram_gib": torch.cuda.max_memory_allocated() / 2**30}
            result["throughput"].append(row)
            print(row, flush=True)

    # 2b. CUDA graphs: same output, host cost per launch
    from facecast.render import GraphedBatchRenderer

    g = GraphedBatchRenderer(dev32)
    for n in (16, 64, 256):
        ids_n = torch.from_numpy(rng.integers(0, len(portraits), n))
        par_n = torch.from_numpy(random_params(n, rng))
        eager = dev32.render(ids_n, par_n).cpu()
        graphed = g.render(ids_n, par_n).cpu()
        same = bool(torch.equal(eager, graphed))
        ms = time_cuda(lambda: g.render(ids_n, par_n), iters=20)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            g.render(ids_n, par_n)
        host = (time.perf_counter() - t) / 20 * 1000
        torch.cuda.synchronize()
        row = {"graph_batch": n, "identical_to_eager": same, "ms": ms, "fps": n / ms * 1000, "host_ms": host}
        result.setdefault("graphs", []).append(row)
        print(row, flush=True)

    # 3. host-side cost per launch (Python + parameter upload), which bounds small batches
    eng = dev32
    n = 25
    par = torch.from_numpy(random_params(n, rng))
    idn = torch.zeros(n, dtype=torch.long)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(50):
        eng.render(idn, par)
    host_ms = (time.perf_counter() - t) / 50 * 1000
    torch.cuda.synchronize()
    result["host_ms_per_launch_25"] = host_ms
    print("host ms per 25-frame launch (no sync):", host_ms)
    if args.out:
        json.dump(result, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
