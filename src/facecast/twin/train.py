"""Twin renderer training: teach RenderNet to redraw one person's lower face from a sketch.

``train_renderer(footage, options) -> (RenderNet, stats)``. Each step takes a batch of training
crops, jitters each (same random shift/scale for the crop and its landmarks, so the sketch stays
on the lips; an independent one for the reference), blanks the lower face and asks the network to
paint it back from the sketch and a random other frame of the person (the reference, which is
where teeth and skin texture come from).

Loss (why): L1 on pixels where the result is pasted (weighted by the blend mask, plus a small
weight elsewhere so the seams agree with the context) and L1 on image gradients inside it, which
keeps teeth and lip edges sharp where plain L1 alone averages them into blur.

Runs in bf16 autocast on CUDA, float32 on CPU. Resumable: with ``checkpoint`` set, the model,
optimiser and step are saved every ``checkpoint_every`` steps and picked up on the next call.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from facecast.twin.mouth import aperture
from facecast.twin.net import RenderNet, blend_mask, draw_sketch
from facecast.twin.options import RenderTrainOptions
from facecast.twin.prepare import Footage

__all__ = ["context_partners", "jitter_batch", "pick_reference", "psnr", "regenerate",
           "render_loss", "to_unit", "train_renderer"]


def to_unit(crops_u8: Tensor) -> Tensor:
    """uint8 [B,R,R,3] -> float [B,3,R,R] in [-1, 1]."""
    return crops_u8.permute(0, 3, 1, 2).float().div(127.5).sub(1)


def jitter_batch(img: Tensor, pts: Tensor | None, shift: float, scale: float, gen: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """Random similarity jitter. img [B,3,R,R]; pts [B,K,2] crop units or None. An output pixel at
    normalised u samples the input at s*u + t, so a point at v moves to (v - t) / s."""
    b = img.shape[0]
    s = 1 + (torch.rand(b, generator=gen, device=gen.device) * 2 - 1) * scale
    t = (torch.rand(b, 2, generator=gen, device=gen.device) * 2 - 1) * (2 * shift)
    theta = torch.zeros(b, 2, 3, device=img.device)
    theta[:, 0, 0] = s.to(img.device)
    theta[:, 1, 1] = s.to(img.device)
    theta[:, :, 2] = t.to(img.device)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if pts is not None:
        v = pts * 2 - 1
        pts = ((v - t.to(pts.device)[:, None]) / s.to(pts.device)[:, None, None] + 1) / 2
    return out, pts


def _grad(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def render_loss(pred: Tensor, target: Tensor, alpha: Tensor) -> Tensor:
    """pred, target [B,3,R,R]; alpha [R,R] blend mask."""
    w = 0.05 + alpha
    l1 = ((pred - target).abs() * w).mean() / w.mean()
    gx_p, gy_p = _grad(pred)
    gx_t, gy_t = _grad(target)
    gl = ((gx_p - gx_t).abs() * alpha[:, 1:]).mean() + ((gy_p - gy_t).abs() * alpha[1:, :]).mean()
    return l1 + gl / alpha.mean()


def context_partners(pick: Tensor, seg: Tensor, frame_no: Tensor, swap: float, max_frames: int,
                     gen: torch.Generator) -> Tensor:
    """For training samples ``pick`` [B] (indices into frames with shot ids ``seg`` [N] and frame
    numbers ``frame_no`` [N]): the frame whose context each sample gets [B]. A fraction ``swap``
    get another frame of the same shot at most ``max_frames`` away; the rest (and any draw that
    would leave the shot) keep their own."""
    b = pick.shape[0]
    off = torch.randint(-max_frames, max_frames + 1, (b,), generator=gen, device=pick.device)
    off = off * (torch.rand(b, generator=gen, device=pick.device) < swap)
    ctx = (pick + off).clamp(0, len(seg) - 1)
    same = (seg[ctx] == seg[pick]) & ((frame_no[ctx] - frame_no[pick]).abs() <= max_frames)
    return torch.where(same, ctx, pick)


def train_renderer(
    footage: Footage,
    options: RenderTrainOptions = RenderTrainOptions(),
    *,
    train_index: np.ndarray | None = None,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[RenderNet, dict]:
    """Train a RenderNet on ``footage`` (frames ``train_index``, default all).

    Returns the network (eval mode, float32, on ``device``) and stats: steps, seconds,
    loss (mean of the last 100 steps), samples/s. progress(step, steps, loss) is called every
    few steps.
    """
    cfg = options.config
    if footage.crops.shape[1] != cfg.size:
        raise ValueError(f"footage crops are {footage.crops.shape[1]} px, the network expects {cfg.size}")
    dev = torch.device(device)
    idx = np.arange(footage.num_frames) if train_index is None else np.asarray(train_index)
    torch.manual_seed(options.seed)
    gen = torch.Generator(device=dev).manual_seed(options.seed)
    # The whole training set lives on the device as uint8 (2,600 crops at 336 px: 0.9 GB).
    crops = torch.from_numpy(footage.crops[idx]).to(dev)
    mouth = torch.from_numpy(footage.mouth[idx]).to(dev)
    net = RenderNet(cfg).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr, betas=(0.9, 0.99), weight_decay=1e-4)
    step = 0
    ckpt = Path(options.checkpoint) if options.checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
    alpha = blend_mask(cfg.size, dev)
    amp = dev.type == "cuda"
    losses: list[float] = []
    loss_dev = torch.zeros((), device=dev)
    # Tiny activations and gradients go subnormal within a few hundred CPU steps and subnormal
    # arithmetic is ~10x slower on x86 (measured: 1.3 s vs 0.24 s a step). Flushed for the loop.
    flushed = dev.type == "cpu" and torch.set_flush_denormal(True)
    t0 = time.perf_counter()
    start_step = step
    net.train()
    n = len(idx)
    # Context partners: a frame of the same shot within context_frames (else the frame itself).
    seg = torch.from_numpy(footage.segment[idx].astype(np.int64)).to(dev)
    frame_no = torch.from_numpy(footage.frame[idx].astype(np.int64)).to(dev)
    while step < options.steps:
        if options.seconds is not None and time.perf_counter() - t0 > options.seconds:
            break
        # The cosine schedule follows whichever budget (steps or seconds) runs out first.
        done = step / options.steps
        if options.seconds is not None:
            done = max(done, (time.perf_counter() - t0) / options.seconds)
        lr = options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        pick = torch.randint(0, n, (options.batch,), generator=gen, device=dev)
        other = (pick + torch.randint(1, n, (options.batch,), generator=gen, device=dev)) % n
        ctx = context_partners(pick, seg, frame_no, options.context_swap, options.context_frames, gen)
        # One jitter for the frame and its context partner, so they stay aligned.
        both, pts = jitter_batch(torch.cat([to_unit(crops[pick]), to_unit(crops[ctx])], 1), mouth[pick],
                                 options.shift, options.scale, gen)
        target, context = both[:, :3], both[:, 3:]
        ref, _ = jitter_batch(to_unit(crops[other]), None, options.shift, options.scale, gen)
        sketch = draw_sketch(pts, cfg.size)
        # What the output should be: the frame inside the regenerated region, its context outside.
        goal = torch.lerp(context, target, alpha)
        if dev.type == "cuda":
            context, ref, sketch = (t.contiguous(memory_format=torch.channels_last) for t in (context, ref, sketch))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            pred = net(context, sketch, ref)
        loss = render_loss(pred.float(), goal, alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        loss_dev += loss.detach()
        if step % 50 == 0 or step == options.steps:
            # One host read per 50 steps: the only synchronisation in the loop.
            k = 50 if step % 50 == 0 else step % 50
            losses.append(float(loss_dev) / k)
            loss_dev.zero_()
            if progress is not None:
                progress(step, options.steps, losses[-1])
        if ckpt is not None and step % options.checkpoint_every == 0:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
            tmp.replace(ckpt)
    secs = time.perf_counter() - t0
    if flushed:
        torch.set_flush_denormal(False)
    net.eval()
    net = net.to(memory_format=torch.contiguous_format)
    stats = {
        "steps": step,
        "steps_this_run": step - start_step,
        "seconds": round(secs, 1),
        "samples_per_s": round((step - start_step) * options.batch / max(secs, 1e-9), 1),
        "loss_last": round(float(np.mean(losses[-2:])), 4) if losses else None,
        "loss_curve": [round(x, 4) for x in losses[:: max(1, len(losses) // 20)]],
    }
    return net, stats


@torch.no_grad()
def regenerate(net: RenderNet, crops_u8: Tensor, mouth: Tensor, ref_u8: Tensor, *, batch: int = 32,
               amp: bool | None = None) -> Tensor:
    """Redraw the lower face of crops from their mouth landmarks with one reference crop.

    crops_u8: [N,R,R,3] uint8; mouth: [N,53,2]; ref_u8: [R,R,3] uint8. Returns float [N,3,R,R]
    in [-1, 1], the network output blended into the input crop with the blend mask.
    """
    dev = crops_u8.device
    amp = dev.type == "cuda" if amp is None else amp
    r = net.config.size
    alpha = blend_mask(r, dev)[None, None]
    ref = to_unit(ref_u8[None])
    out = []
    for i in range(0, crops_u8.shape[0], batch):
        x = to_unit(crops_u8[i : i + batch])
        s = draw_sketch(mouth[i : i + batch].to(dev), r)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            y = net(x, s, ref.expand(x.shape[0], -1, -1, -1)).float()
        out.append(x * (1 - alpha) + y.clamp(-1, 1) * alpha)
    return torch.cat(out)


def pick_reference(footage: Footage, index: np.ndarray | None = None) -> int:
    """Frame used as the reference at inference: a voiced frame whose mouth opening is at the
    70th percentile (teeth visible, lips not stretched), nearest the median crop brightness."""
    idx = np.arange(footage.num_frames) if index is None else np.asarray(index)
    voiced = idx[footage.voiced[idx]] if footage.voiced[idx].any() else idx
    ap = aperture(footage.mouth[voiced])
    target = np.percentile(ap, 70)
    near = voiced[np.argsort(np.abs(ap - target))[:15]]
    bright = footage.crops[near].reshape(len(near), -1).mean(axis=1)
    return int(near[np.argmin(np.abs(bright - np.median(bright)))])


def psnr(a: Tensor, b: Tensor, weight: Tensor | None = None) -> float:
    """PSNR in dB of images in [-1, 1] (peak 2), optionally over a [R,R] region weight."""
    d2 = (a.float() - b.float()) ** 2
    if weight is not None:
        w = weight.expand_as(d2)
        mse = float((d2 * w).sum() / w.sum())
    else:
        mse = float(d2.mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))
