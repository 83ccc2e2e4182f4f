"""Throughput of `encode.Mp4Writer` alone (no rendering): frames/s at 512x512 for 1 encoder and
for N segment encoders in parallel threads (`workers`), and where the writer's time goes.

    python benchmarks/encode_bench.py --portraits .devrun/portraits512.npz --frames 1500 --workers 1 4 8 12 \
        [--threads 1 2] [--input rgb i420]

--input i420 hands the writer yuv420p frames (what a CUDA render now delivers, converted on the
GPU by encode.to_i420; here converted once up front), rgb leaves the conversion to swscale.
--threads: x264 threads per segment encoder (Mp4Writer's ``threads``; 0 = its default of 2).

Frames: a real portrait, shifted by a slowly moving sub-image offset and a mouth-sized patch
that changes every frame, so the encoder sees motion like a talking head (not identical frames).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from facecast.media import Mp4Writer, probe_mp4, to_i420
from facecast.types import I420Frames, VideoFrames


def frames_like_a_talking_head(img: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.empty((n,) + img.shape, np.uint8)
    h, w = img.shape[:2]
    for k in range(n):
        dy, dx = int(3 * np.sin(k / 17)), int(4 * np.sin(k / 23))
        f = np.roll(img, (dy, dx), axis=(0, 1))
        y0, x0 = int(h * 0.62), int(w * 0.4)
        patch = f[y0:y0 + 40, x0:x0 + 100].astype(np.int16) + rng.integers(-25, 25, (40, 100, 1))
        f[y0:y0 + 40, x0:x0 + 100] = np.clip(patch, 0, 255)
        out[k] = f
    return out


def jpeg_bench(frames: torch.Tensor, batch: int = 25, quality: int = 80) -> None:
    """Frames/s of encode_jpeg in batches of ``batch`` (a live tick's worth), per device."""
    from facecast.media import encode_jpeg

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        x = frames.to(dev)
        encode_jpeg(VideoFrames(x[:batch], 25.0, 0), quality)  # warm-up (nvJPEG handle, Pillow import)
        n = min(len(x), 500 if dev == "cpu" else len(x))
        cpu0, t0 = time.process_time(), time.perf_counter()
        size = 0
        for a in range(0, n, batch):
            size += sum(map(len, encode_jpeg(VideoFrames(x[a:a + batch], 25.0, a), quality)))
        wall = time.perf_counter() - t0
        print(f"jpeg {dev:4s} q{quality} batch {batch}: {n / wall:8.1f} frames/s, CPU {(time.process_time() - cpu0) / n * 1e3:.2f} "
              f"ms/frame, {size / n / 1024:.1f} KiB/frame", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True)
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--chunk", type=int, default=100, help="frames per write_video call (a say segment)")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--threads", type=int, nargs="+", default=[0])
    ap.add_argument("--input", nargs="+", default=["rgb"], choices=["rgb", "i420"])
    ap.add_argument("--jpeg", action="store_true",
                    help="only time encode.encode_jpeg (live previews): nvJPEG on CUDA vs Pillow on the CPU")
    ap.add_argument("--busy", action="store_true",
                    help="a Python thread spins alongside (as the render loop does in `say`): GIL contention")
    ap.add_argument("--switch", type=float, nargs="+", default=[None],
                    help="sys.setswitchinterval values to try (s; default Python's 0.005)")
    args = ap.parse_args()
    import sys
    import threading

    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(i * i for i in range(2000))

    if args.busy:
        threading.Thread(target=spin, daemon=True).start()
    img = np.load(args.portraits)["img0"]
    frames = torch.from_numpy(frames_like_a_talking_head(img, args.frames))
    yuv = to_i420(VideoFrames(frames, 25.0, 0)).data
    print(f"{os.cpu_count()} cores, {args.frames} frames {img.shape[1]}x{img.shape[0]}, preset {args.preset}")
    if args.jpeg:
        jpeg_bench(frames)
        return
    default_switch = sys.getswitchinterval()
    for switch, kind, threads, workers in [(sw, k, t, w) for sw in args.switch for k in args.input
                                           for t in args.threads for w in args.workers]:
        sys.setswitchinterval(switch or default_switch)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.mp4")
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            with Mp4Writer(path, fps=25, width=img.shape[1], height=img.shape[0], preset=args.preset,
                           workers=workers, threads=threads) as w:
                for a in range(0, args.frames, args.chunk):
                    if kind == "i420":
                        w.write_video(I420Frames(yuv[a:a + args.chunk], 25.0, a))
                    else:
                        w.write_video(VideoFrames(frames[a:a + args.chunk], 25.0, a))
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            info = probe_mp4(path)
            size = os.path.getsize(path)
        print(f"switch {sys.getswitchinterval() * 1e3:.2f} ms busy {int(args.busy)} {kind:4s} threads {threads} "
              f"workers {workers:2d}: {args.frames / wall:7.1f} frames/s, wall {wall:6.2f} s, "
              f"CPU {cpu / wall:4.1f} cores, {info['num_frames']} frames, {size / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()

