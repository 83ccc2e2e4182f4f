"""Twin renderer on the GPU machine: prepare -> train -> held-out PSNR -> inference speed.

Run there (see docs/benchmarks.md for the carry set-up):
    python3 scripts/gpu_twin.py --tracks .devrun/twin/obama_tracks.npz --media .devrun/media \
        --seconds 360 --out $OUT

Held out: the last 20 % of styletalk_obama_clip2 (never trained on). Prints one JSON line per
stage and a summary; writes the renderer (safetensors), a held-out sheet PNG and stats JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def log(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--seconds", type=float, default=360)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--widths", default="32,64,128,192,256")
    ap.add_argument("--out", default="out")
    ap.add_argument("--holdout", default="styletalk_obama_clip2_en")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--crop", type=int, default=336)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from facecast.twin.prepare import PrepOptions, load_tracks, prepare
    from facecast.twin.render import RenderConfig, crop_frames, draw_sketch, lower_face_mask, paste_crops, scale_affine
    from facecast.twin.train import RenderTrainOptions, pick_reference, psnr, regenerate, to_unit, train_renderer

    dev = args.device
    t0 = time.perf_counter()
    tracks = load_tracks(args.tracks, media_dir=args.media)
    footage = prepare(tracks, PrepOptions(crop_px=args.crop))
    log(stage="prepare", seconds=round(time.perf_counter() - t0, 1), **footage.summary)

    names = [Path(c["path"]).stem for c in footage.clips]
    hc = names.index(args.holdout)
    n_hc = int((footage.clip == hc).sum())
    held = (footage.clip == hc) & (footage.frame >= int(0.8 * n_hc))
    train_idx = np.flatnonzero(~held)
    held_idx = np.flatnonzero(held)

    cfg = RenderConfig(size=args.crop, widths=tuple(int(w) for w in args.widths.split(",")))
    opts = RenderTrainOptions(config=cfg, steps=10**6, seconds=args.seconds, batch=args.batch)
    last = [time.perf_counter()]

    def progress(step, steps, loss):
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            log(stage="train", step=step, loss=round(loss, 4))

    net, stats = train_renderer(footage, opts, train_index=train_idx, device=dev, progress=progress)
    stats["params_M"] = round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
    log(stage="trained", **{k: v for k, v in stats.items() if k != "loss_curve"})

    ref = pick_reference(footage, train_idx)
    dev_t = torch.device(dev)
    crops = torch.from_numpy(footage.crops[held_idx]).to(dev_t)
    mouth = torch.from_numpy(footage.mouth[held_idx]).to(dev_t)
    ref_u8 = torch.from_numpy(footage.crops[ref]).to(dev_t)
    gen = regenerate(net, crops, mouth, ref_u8)
    real = to_unit(crops)
    mask = lower_face_mask(cfg.size, dev_t)
    q = {"held_frames": len(held_idx), "mouth_psnr_db": round(psnr(gen, real, mask), 2),
         "crop_psnr_db": round(psnr(gen, real), 2)}
    # Same, with a random other reference per frame (robustness to the reference choice).
    g = torch.Generator().manual_seed(1)
    refs = torch.from_numpy(footage.crops[train_idx[torch.randint(0, len(train_idx), (4,), generator=g).numpy()]]).to(dev_t)
    q["mouth_psnr_db_other_refs"] = [round(psnr(regenerate(net, crops, mouth, r), real, mask), 2) for r in refs]

    # Whole frame at 512 x 512: the source frames upscaled (bicubic), the crop pasted back.
    from facecast.twin.prepare import _decode_all
    clip = footage.clips[hc]
    frames = torch.from_numpy(_decode_all(clip["path"], tuple(clip["size"]))[footage.frame[held_idx]]).to(dev_t)
    src = frames.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    k = 512 / src.shape[-1]
    big = F.interpolate(src, size=(512, 512), mode="bicubic", align_corners=False).clamp(-1, 1)
    aff = scale_affine(torch.from_numpy(footage.affine[held_idx]).to(dev_t).double(), k)
    pasted = paste_crops(big, gen, aff)
    q["frame512_psnr_db"] = round(psnr(pasted, big), 2)
    # Ceiling of the paste itself: the real crop pasted back (only resampling differs).
    q["frame512_psnr_db_real_crop_pasted"] = round(psnr(paste_crops(big, crop_frames(big, aff, cfg.size), aff), big), 2)
    log(stage="heldout", **q)

    # Sheet: real | generated | sketch for 8 held-out frames.
    sel = np.linspace(0, len(held_idx) - 1, 8).astype(int)
    sk = draw_sketch(mouth[sel], cfg.size)
    rows = torch.cat([torch.cat(list(real[sel]), 2), torch.cat(list(gen[sel]), 2), torch.cat(list(sk), 2)], 1)
    img = ((rows.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().cpu().numpy()
    from PIL import Image
    Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2)).save(out / "heldout_sheet.jpg", quality=90)

    # Inference speed, whole pipeline per frame at 512 x 512 output: crop (grid_sample) ->
    # sketch -> network -> paste, batched; timed with CUDA events after warm-up.
    res = {}
    if dev != "cuda":
        return
    net_h = net.half().to(memory_format=torch.channels_last)
    step_fn = net_h
    if args.compile:
        step_fn = torch.compile(net_h, mode="max-autotune-no-cudagraphs")
    for b in (32, 64, 128):
        idx = torch.arange(b, device=dev_t) % len(held_idx)
        fr = big[idx].half().contiguous()
        af = aff[idx]
        mo = mouth[idx]
        refb = to_unit(ref_u8[None]).half().expand(b, -1, -1, -1)

        def once():
            c = crop_frames(fr, af, cfg.size)
            s_ = draw_sketch(mo, cfg.size).half()
            y = step_fn(c.contiguous(memory_format=torch.channels_last), s_, refb)
            return paste_crops(fr, y.clamp(-1, 1), af)

        with torch.no_grad():
            for _ in range(3):
                once()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            reps = 10
            for _ in range(reps):
                once()
            e1.record()
            e1.synchronize()
        ms = e0.elapsed_time(e1) / reps
        res[f"b{b}"] = {"ms_per_batch": round(ms, 2), "fps": round(b / ms * 1000, 1)}
        # Network alone
        with torch.no_grad():
            c = crop_frames(fr, af, cfg.size).contiguous(memory_format=torch.channels_last)
            s_ = draw_sketch(mo, cfg.size).half()
            for _ in range(3):
                step_fn(c, s_, refb)
            e0.record()
            for _ in range(reps):
                step_fn(c, s_, refb)
            e1.record()
            e1.synchronize()
        res[f"b{b}"]["net_fps"] = round(b / (e0.elapsed_time(e1) / reps) * 1000, 1)
    res["peak_vram_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    log(stage="speed", **res)

    from safetensors.torch import save_file
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(out / "render.safetensors"),
              metadata={"config": json.dumps(cfg.to_json()), "reference": str(int(ref))})
    (out / "twin_gpu.json").write_text(json.dumps({"summary": footage.summary, "train": stats, "heldout": q,
                                                   "speed": res, "reference": int(ref)}, indent=1))


if __name__ == "__main__":
    main()
