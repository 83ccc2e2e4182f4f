"""facecast twin on the GPU machine: train end to end, measure held-out quality and speed.

    python3 benchmarks/gpu_twin.py train --tracks .devrun/twin/obama_tracks.npz --media .devrun/media \
        --minutes 5 --out $OUT          # train_twin (+ held-out figures, + held-out video)
    python3 benchmarks/gpu_twin.py speed --twin .devrun/twin/obama.twin --speech .devrun/media/x.mp4 \
        --streams 16,24,32 --out $OUT   # batched fps at 512, CPU-equivalence, live load test

Held out: the last 20 % of styletalk_obama_clip2 (kept out of both models and the background).
The stage-1 tracks come from the CPU machine (no mediapipe here); their time is reported there.
Prints one JSON line per stage; writes JSON, a sheet and the held-out video under --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def log(**kw) -> None:
    print(json.dumps(kw, default=str), flush=True)


def lagged(x: np.ndarray, ref: np.ndarray, max_lag: int = 5) -> tuple[float, int]:
    """Best Pearson r of x shifted against ref and the lag (positive: x late): eval's measure."""
    from facecast.quality.metrics import lagged_corr

    lags, r = lagged_corr(x, ref, max_lag)
    i = int(np.nanargmax(r))
    return float(r[i]), int(lags[i])


def train(args) -> None:
    from facecast.twin import TwinTrainOptions, train_twin
    from facecast.twin.generate import Twin
    from facecast.twin.mouth import aperture, mouth_width
    from facecast.twin.net import lower_face_mask, paste_crops, scale_affine
    from facecast.twin.options import PrepOptions, RenderTrainOptions
    from facecast.twin.pipeline import holdout_mask
    from facecast.twin.prepare import decode_all, load_tracks, prepare
    from facecast.twin.train import psnr, regenerate, to_unit

    out = Path(args.out)
    tracks = load_tracks(args.tracks, media_dir=args.media)
    videos = [t.path for t in tracks]
    hold = (args.holdout, 0.2)
    from facecast.twin.net import RenderConfig

    cfg = RenderConfig(size=args.crop, widths=tuple(int(w) for w in args.widths.split(",")))
    prep = PrepOptions(crop_px=args.crop)
    opts = TwinTrainOptions(device=args.device, prep=prep, holdout=hold, work_dir="/tmp/twinwork",
                            render=RenderTrainOptions(config=cfg, steps=10**6, seconds=args.minutes * 60,
                                                      context_swap=args.context_swap),
                            mouth_steps=args.mouth_steps, seed=args.seed)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(stage, done, total):
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            log(stage=stage, done=done, total=total, t=round(time.perf_counter() - t0))

    report = train_twin(videos, out / "obama.twin", opts, progress=progress, tracks=tracks)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    log(stage="trained", **{k: v for k, v in report.items() if k not in ("summary",)})

    # Held-out material (same preparation as training, deterministic).
    footage = prepare(tracks, prep)
    held = holdout_mask(footage, hold)
    hi = np.flatnonzero(held)
    ci = int(footage.clip[hi[0]])
    clip = footage.clips[ci]
    fps = float(clip["fps"])
    twin = Twin.load(out / "obama.twin", device=args.device, size=512)
    dev = torch.device(args.device)
    q: dict = {"held_frames": len(hi), "held_seconds": round(len(hi) / fps, 2)}

    # 1. Renderer with ground-truth landmarks (the mouth region of the 336-px crop, and the
    # whole 512 frame after pasting back).
    crops = torch.from_numpy(footage.crops[hi]).to(dev)
    mouth_gt = torch.from_numpy(footage.mouth[hi]).to(dev)
    gen = regenerate(twin.net.float(), crops, mouth_gt, twin.reference)
    twin.net.to(twin.dtype)
    real = to_unit(crops)
    q["mouth_psnr_db"] = round(psnr(gen, real, lower_face_mask(real.shape[-1], dev)), 2)
    frames = torch.from_numpy(decode_all(clip["path"], tuple(clip["size"]))[footage.frame[hi]]).to(dev)
    src = frames.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    big = torch.nn.functional.interpolate(src, size=(512, 512), mode="bicubic", align_corners=False).clamp(-1, 1)
    aff = scale_affine(torch.from_numpy(footage.affine[hi]).to(dev).double(), 512 / src.shape[-1])
    q["frame512_psnr_db"] = round(psnr(paste_crops(big, gen, aff), big), 2)

    # 2. Audio -> mouth on the held-out audio alone (frame 0 = first held-out frame).
    f0 = int(footage.frame[hi[0]])
    a = clip["audio"][int(round(f0 / fps * 16000)):]
    pred = twin.mouth(a, fps, len(hi))
    real_m = footage.mouth[hi]
    r_ap, lag_ap = lagged(aperture(pred), aperture(real_m))
    r_w, lag_w = lagged(mouth_width(pred), mouth_width(real_m))
    q |= {"aperture_r": round(r_ap, 3), "aperture_lag": lag_ap, "aperture_r_lag0": round(float(np.corrcoef(aperture(pred), aperture(real_m))[0, 1]), 3),
          "width_r": round(r_w, 3), "width_lag": lag_w,
          "landmark_rmse_crop": round(float(np.sqrt(np.mean((pred - real_m) ** 2))), 4)}
    # 3. Fully generated: predicted mouth on its own background, written for `facecast eval`
    # (mediapipe on the CPU machine measures the rendered mouth against the real one).
    from facecast.media import Mp4Writer
    from facecast.types import AudioChunk

    video = twin.render(pred, 0, fps)
    with Mp4Writer(out / "heldout_twin.mp4", fps=fps, width=512, height=512, audio_rate=16000, crf=18) as w:
        w.write_video(video)
        w.write_audio(AudioChunk(a[None, : int(len(hi) / fps * 16000)], 16000, 0.0))
    # Same frames with ground-truth landmarks on the real held-out frames (the "resynthesis" ceiling).
    log(stage="heldout", **q)
    (out / "twin_train.json").write_text(json.dumps({"report": report, "heldout": q}, indent=1, default=str))
    if args.split_mb:  # reassemble with: cat obama.twin.part* > obama.twin
        data = (out / "obama.twin").read_bytes()
        k = args.split_mb * 2**20
        for i in range(0, len(data), k):
            (out / f"obama.twin.part{i // k}").write_bytes(data[i: i + k])
        (out / "obama.twin").unlink()


def speed(args) -> None:
    from facecast.audio import load_audio
    from facecast.twin.generate import Twin
    from facecast.live.loadtest import run_loadtest
    from facecast.live.options import EngineOptions, LoadTestOptions

    out = Path(args.out)
    twin = Twin.load(args.twin, device="cuda", size=512, batch=args.batch, compile=args.compile)
    res: dict = {"compiled": args.compile}
    # CPU equivalence of the CUDA half-precision path on real frames.
    cpu = Twin.load(args.twin, device="cpu", size=512)
    rng = np.random.default_rng(0)
    speech = load_audio(args.speech).mono()
    mouth = twin.mouth(speech, 25.0, 64)
    idx = rng.integers(0, twin.num_background_frames, 8)
    g = twin.render_indexed(mouth[:8], idx).cpu().float()
    c = cpu.render_indexed(mouth[:8], idx).float()
    d = (g - c).abs()
    res["cuda_vs_cpu"] = {"mean_abs_u8": round(float(d.mean()), 3), "p99_abs_u8": round(float(d.flatten().kthvalue(int(0.99 * d.numel())).values), 1),
                          "max_abs_u8": round(float(d.max()), 1)}
    log(stage="equivalence", **res["cuda_vs_cpu"])
    if args.compile:  # and against the eager CUDA path
        t0 = time.perf_counter()
        eager = Twin.load(args.twin, device="cuda", size=512, batch=args.batch)
        g = twin.render_indexed(mouth[:8], idx).cpu().float()
        e = eager.render_indexed(mouth[:8], idx).cpu().float()
        d = (g - e).abs()
        res["compiled_vs_eager"] = {"mean_abs_u8": round(float(d.mean()), 3), "max_abs_u8": round(float(d.max()), 1),
                                    "first_call_s": round(time.perf_counter() - t0, 1)}
        log(stage="compiled_vs_eager", **res["compiled_vs_eager"])
        del eager
    # Batched throughput, whole per-frame pipeline at 512 (crop, sketch, network, paste, uint8).
    big = np.concatenate([mouth] * 4)
    for b in ((args.batch, 2 * args.batch, 4 * args.batch) if args.compile else (32, 64, 128, 256)):
        m = big[:b] if b <= len(big) else np.resize(big, (b, *big.shape[1:]))
        ix = rng.integers(0, twin.num_background_frames, b)
        if not args.compile:
            twin.batch = b
        for _ in range(3):
            twin.render_indexed(m, ix)
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(10):
            twin.render_indexed(m, ix)
        e1.record()
        e1.synchronize()
        res[f"fps_b{b}"] = round(b * 10 / (e0.elapsed_time(e1) / 1000), 1)
    res["peak_vram_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    log(stage="throughput", **res)
    twin.batch = args.batch
    for n in [int(x) for x in args.streams.split(",")]:
        # As the twin load test before the Engine: 0.25 s between client starts, 4 torch threads
        # for the mouth models (in this process), the rest of the cores encode.
        engine = EngineOptions(size=512, device="cuda", workers=0, encoders=args.encoders, threads=4)
        r = run_loadtest([twin], speech, LoadTestOptions(streams=n, seconds=args.seconds, stagger_s=0.25 * n,
                                                         engine=engine))
        res[f"load{n}"] = r
        log(stage="loadtest", **{k: v for k, v in r.items() if k != "options"})
    (out / "twin_speed.json").write_text(json.dumps(res, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--tracks", required=True)
    t.add_argument("--media", required=True)
    t.add_argument("--minutes", type=float, default=5.0)
    t.add_argument("--holdout", default="styletalk_obama_clip2_en.mp4")
    t.add_argument("--out", default="out")
    t.add_argument("--device", default="cuda")
    t.add_argument("--crop", type=int, default=336)
    t.add_argument("--widths", default="32,64,128,192,256")
    t.add_argument("--mouth-steps", type=int, default=None)
    t.add_argument("--context-swap", type=float, default=0.25)
    t.add_argument("--seed", type=int, default=0, help="TwinTrainOptions.seed (both models' initialisation and batches)")
    t.add_argument("--split-mb", type=int, default=15, help="also write the .twin in parts of this size "
                   "(the device tool returns files of at most 16 MiB); 0: do not")
    s = sub.add_parser("speed")
    s.add_argument("--twin", required=True)
    s.add_argument("--speech", required=True)
    s.add_argument("--streams", default="16")
    s.add_argument("--seconds", type=float, default=20.0)
    s.add_argument("--encoders", type=int, default=8)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--compile", action="store_true")
    s.add_argument("--out", default="out")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (train if args.cmd == "train" else speed)(args)


if __name__ == "__main__":
    main()
