"""Speaking as a twin: speech -> mouth shapes -> regenerated lower face on looping real footage.

Public API
----------
- ``Twin.load(path, device=..., size=512)``: a .twin file ready to render.
- ``Twin.mouth(audio16k, fps, num_frames) -> [n, 53, 2]``: the person's mouth shapes for speech.
- ``Twin.render(mouth, first_frame, fps) -> VideoFrames``: frames for global frame indices
  ``first_frame ...``: the background loop frame for that time, its lower face redrawn.
- ``say_twin(twin, output, text=..., audio=..., options=SayOptions())``: the `say` job for a twin
  (same segments, voice and encoder as the portrait pipeline, so memory stays flat).

Background (why a ping-pong loop): the twin shows real footage of the person, so head motion,
blinks and lighting are real; playing it forward then backward never jumps (every frame's
neighbour is a neighbouring real frame), unlike a plain loop whose seam teleports the head.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch
import torch.nn.functional as F

from facecast.errors import InputError
from facecast.twin.file import TwinData, load_twin
from facecast.twin.render import (RenderConfig, RenderNet, blend_mask, crop_frames, crop_theta, draw_sketch,
                                  paste_crops, paste_theta, scale_affine)
from facecast.types import ANALYSIS_RATE, VideoFrames

log = logging.getLogger(__name__)

__all__ = ["MouthStream", "Twin", "decode_background", "pingpong_index", "say_twin"]

_CONTEXT_S = 0.5  # audio kept from the previous segment so the mouth model sees its left context


def decode_background(data: bytes) -> tuple[np.ndarray, float]:
    """uint8 [M, H, W, 3] RGB frames and fps of the MP4 bytes stored in a twin."""
    with av.open(io.BytesIO(data), mode="r") as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    return np.stack(frames), fps


def pingpong_index(frame: np.ndarray, fps: float, bg_frames: int, bg_fps: float) -> np.ndarray:
    """Background frame shown at global output frames ``frame`` [n]: the loop runs forward then
    backward (period 2 (M - 1)) at the background's own rate."""
    if bg_frames == 1:
        return np.zeros(len(frame), np.int64)
    period = 2 * (bg_frames - 1)
    q = np.rint(np.asarray(frame) / fps * bg_fps).astype(np.int64) % period
    return np.where(q < bg_frames, q, period - q)


class Twin:
    """A loaded twin on one device. Not thread-safe (one render at a time)."""

    def __init__(self, data: TwinData, *, device: str | torch.device = "cpu", size: int | None = 512,
                 batch: int = 32, compile: bool = False) -> None:
        from facecast.twin.mouth import MouthConfig, MouthModel

        self.device = torch.device(device)
        self.batch = batch
        cfg = data.config
        self.config = cfg
        self.render_config = RenderConfig.from_json(cfg["render"])
        half = self.device.type == "cuda"
        self.dtype = torch.float16 if half else torch.float32
        net = RenderNet(self.render_config)
        try:
            net.load_state_dict({k: v.float() for k, v in data.render_state.items()})
            self.mouth_model = MouthModel(MouthConfig.from_dict(cfg["mouth"]))
            self.mouth_model.load_state_dict(data.mouth_state)
        except (RuntimeError, KeyError, TypeError) as exc:
            raise InputError(f"twin file ({data.sha256[:12]}): its weights do not fit this facecast's models "
                             f"({str(exc).splitlines()[0]}). It was made by another version; re-train it.") from exc
        net = net.to(self.device, self.dtype).eval()
        if half:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.mouth_model.eval()
        self.reference = data.reference.to(self.device)
        bg, self.bg_fps = decode_background(data.bg_video)
        affine = data.bg_affine.double()
        h, w = bg.shape[1:3]
        if size is not None:
            k = size / max(h, w)
            nh, nw = max(2, round(h * k / 2) * 2), max(2, round(w * k / 2) * 2)
        else:
            nh, nw = h, w
        self.size = (nw, nh)
        self._bg_u8 = torch.from_numpy(bg).to(self.device)  # at source size; resized per batch
        bg_affine = scale_affine(affine, (nw / w, nh / h)).to(self.device)
        # Per background frame, computed once: the sampling grids' transforms and the blend mask.
        r = self.render_config.size
        self._theta_crop = crop_theta(bg_affine, (nh, nw), r)
        self._theta_paste = paste_theta(bg_affine, (nh, nw), r)
        self._alpha = blend_mask(r, self.device)
        self._ref = self.reference.permute(2, 0, 1)[None].to(self.dtype).div(127.5).sub(1)
        # The hot step, compiled on request: one fixed batch shape (short batches are padded), CUDA
        # graphs to replay its ~100 kernels with one launch (``reduce-overhead``).
        self.compiled = bool(compile)
        self._step_fn = torch.compile(self._step, mode="reduce-overhead", dynamic=False) if compile else self._step
        self.sha256 = data.sha256

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu", size: int | None = 512,
             batch: int = 32, compile: bool = False) -> "Twin":
        return cls(load_twin(path), device=device, size=size, batch=batch, compile=compile)

    @property
    def num_background_frames(self) -> int:
        return int(self._bg_u8.shape[0])

    def mouth(self, audio16k: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
        """float32 [num_frames, 53, 2] mouth shapes (crop units) for frames at k / fps s of the audio."""
        from facecast.twin.mouth import predict_mouth

        return predict_mouth(self.mouth_model, np.asarray(audio16k, np.float32), fps, num_frames)

    def background_index(self, frames: np.ndarray, fps: float) -> np.ndarray:
        """Background frame [n] shown at global output frames ``frames`` [n]."""
        return pingpong_index(frames, fps, self.num_background_frames, self.bg_fps)

    @torch.no_grad()
    def render(self, mouth: np.ndarray, first_frame: int, fps: float) -> VideoFrames:
        """Frames uint8 [n, H, W, 3] (on the CPU) for global frames first_frame + k, k < n."""
        idx = self.background_index(first_frame + np.arange(len(mouth)), fps)
        return VideoFrames(self.render_indexed(mouth, idx).cpu(), fps, first_frame)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Host -> device without waiting for the device: a copy from pageable memory would
        block until all queued work (e.g. the previous batch's render) is done."""
        if self.device.type != "cuda":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def warm_up(self) -> None:
        """Render one full batch (compiles and records the CUDA graph when ``compile``), so the
        first real frames do not pay for it."""
        n = self.batch
        mouth = np.zeros((n, 53, 2), np.float32) + 0.5
        for _ in range(2):
            self.render_indexed(mouth, np.arange(n) % self.num_background_frames)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # once, at start-up: not in the hot path

    def _step(self, mouth: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        """One batch: mouth [b,53,2], background indices sel [b] -> uint8 [b,H,W,3]."""
        r = self.render_config.size
        src = self._bg_u8[sel].permute(0, 3, 1, 2).to(self.dtype).div(127.5).sub(1)
        if (self.size[1], self.size[0]) != tuple(src.shape[-2:]):
            src = F.interpolate(src, size=(self.size[1], self.size[0]), mode="bicubic",
                                align_corners=False).clamp(-1, 1)
        crops = crop_frames(src, None, r, theta=self._theta_crop[sel])
        sketch = draw_sketch(mouth, r).to(self.dtype)
        if self.device.type == "cuda":
            crops = crops.contiguous(memory_format=torch.channels_last)
        y = self.net(crops, sketch, self._ref.expand(sel.shape[0], -1, -1, -1)).clamp(-1, 1)
        frames = paste_crops(src, y, None, theta=self._theta_paste[sel], alpha=self._alpha)
        return frames.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    @torch.no_grad()
    def render_indexed(self, mouth: np.ndarray | torch.Tensor, bg_index: np.ndarray) -> torch.Tensor:
        """uint8 [n, H, W, 3] on the twin's device: background frames ``bg_index`` [n] with
        their lower face redrawn for ``mouth`` [n, 53, 2]. Frames of many streams can share one
        call (that is how the live engine batches across streams)."""
        n = len(mouth)
        out = torch.empty((n, self.size[1], self.size[0], 3), dtype=torch.uint8, device=self.device)
        m_all = self._to_device(torch.as_tensor(mouth, dtype=torch.float32))
        idx_all = self._to_device(torch.as_tensor(np.asarray(bg_index), dtype=torch.long))
        for i in range(0, n, self.batch):
            m, sel = m_all[i : i + self.batch], idx_all[i : i + self.batch]
            b = sel.shape[0]
            if self.compiled:
                if b < self.batch:  # one shape for the compiled step: repeat the last frame
                    pad = self.batch - b
                    m = torch.cat([m, m[-1:].expand(pad, -1, -1)])
                    sel = torch.cat([sel, sel[-1:].expand(pad)])
                torch.compiler.cudagraph_mark_step_begin()
            # Copied out at once: a replayed CUDA graph reuses its output memory.
            out[i : i + b] = self._step_fn(m, sel)[:b]
        return out


class MouthStream:
    """Mouth shapes of one stream, audio pushed as it comes, frames asked for when their
    look-ahead has arrived. Keeps ``_CONTEXT_S`` of past audio (the model's left context), so
    memory is flat however long the stream runs."""

    def __init__(self, twin: Twin, fps: float) -> None:
        from facecast.buffer import SampleBuffer

        self.twin, self.fps = twin, fps
        self.audio = SampleBuffer(1)  # 16 kHz mono, indexed by stream sample

    def push(self, start_s: float, samples16k: np.ndarray) -> None:
        """Put mono 16 kHz audio at ``start_s``: a gap before it is silence, anything after it is
        replaced."""
        self.audio.truncate(int(round(start_s * ANALYSIS_RATE)))
        self.audio.append(np.asarray(samples16k, np.float32).reshape(1, -1))

    def forget_after(self, t: float) -> None:
        """Drop audio from ``t`` seconds on (barge-in)."""
        self.audio.truncate(min(self.audio.end, int(round(t * ANALYSIS_RATE))))

    def frames(self, first_frame: int, num_frames: int) -> np.ndarray:
        """float32 [num_frames, 53, 2] for global frames first_frame ...; audio beyond the last
        frame (up to the model's look-ahead) is used if it has been pushed."""
        ctx = min(first_frame, int(round(_CONTEXT_S * self.fps)))
        w0 = int(round((first_frame - ctx) / self.fps * ANALYSIS_RATE))
        audio = self.audio.get(w0, self.audio.end)[0]
        mouth = self.twin.mouth(audio, self.fps, ctx + num_frames)[ctx:]
        # Forget audio older than the left context of the next frame.
        self.audio.trim(int(round((first_frame + num_frames - ctx) / self.fps * ANALYSIS_RATE)))
        return mouth


def say_twin(
    twin: Twin,
    output: str | Path,
    *,
    text: str | None = None,
    audio: str | Path | None = None,
    options=None,
    progress: Callable[[float, float | None], None] | None = None,
    timings=None,
) -> Path:
    """Render an MP4 of the twin saying ``text`` (bundled voice) or ``audio``. Nothing is left at
    ``output`` unless the whole job succeeds."""
    from facecast import audio as audio_mod
    from facecast.media import check_output_path
    from facecast.options import SayOptions
    from facecast.pipeline import SayChunk, Timings, _ThreadedWriter, audio_segments, text_segments

    options = options or SayOptions()
    timings = timings if timings is not None else Timings()
    if (text is None) == (audio is None):
        raise InputError("say: give either text or audio (exactly one). Use --text \"...\" or --audio FILE.")
    output = check_output_path(output)
    fps = options.fps
    if text is not None:
        segments = timings.timed_iter("voice", text_segments(text, fps))
        total = None
    else:
        total = audio_mod.open_audio(audio).duration
        segments = timings.timed_iter("decode", audio_segments(audio, fps, options.segment_max_s,
                                                               options.first_segment_s))
    mouths = MouthStream(twin, fps)
    writer = None
    voiced_any = False
    try:
        for seg in segments:
            with timings.stage("mouth"):
                mouths.push(seg.start, seg.analysis)
                mouth = mouths.frames(seg.first_frame, seg.num_frames)
                voiced_any = voiced_any or float(np.abs(seg.analysis).max(initial=0.0)) > 1e-3
            with timings.stage("render"):
                video = twin.render(mouth, seg.first_frame, fps)
            if writer is None:
                ref = seg.output_audio[0]
                writer = _ThreadedWriter(output, options, twin.size[0], twin.size[1], ref.sample_rate,
                                         ref.channels, timings)
            writer.put(SayChunk(video, seg.output_audio, seg, None))
            if progress:
                progress(seg.end, total)
        if writer is None:
            raise InputError("say: nothing to render (the input has no duration).")
        if not voiced_any:
            src = audio if audio is not None else "--text"
            raise InputError(f"{src}: no speech found (the audio is silent). Give a recording with speech.")
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, None)
        raise
    writer.__exit__(None, None, None)
    return output
