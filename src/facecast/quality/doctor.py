"""`facecast doctor`: the truth about this machine, checked by running things, not by asking.

Each check returns a `Check(name, ok, detail, fix)`. A GPU is only reported usable after a kernel
ran on it and gave the right answer; NVENC only after an encoder opened and encoded frames;
bundled models only after they loaded from their packages (never from the network).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..sysinfo import cpu_cores, cpu_name, memory_gib


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1000


def check_python() -> Check:
    import torch

    return Check("python/torch", True, f"Python {platform.python_version()}, torch {torch.__version__} "
                 f"(CUDA build: {torch.version.cuda or 'none'}), {platform.machine()}, {cpu_name() or 'unknown CPU'}, "
                 f"{cpu_cores()} cores, {memory_gib():.1f} GiB RAM")


def check_cuda(device: str = "cuda") -> Check:
    """Run a real matrix product on the GPU and compare it with the CPU result."""
    import torch

    if not torch.cuda.is_available():
        why = "torch has no CUDA support (CPU build)" if torch.version.cuda is None else \
              "torch is a CUDA build but no usable GPU/driver was found"
        return Check("cuda", False, why, "install an NVIDIA driver and a CUDA build of torch, or use --device cpu")
    try:
        dev = torch.device(device)
        props = torch.cuda.get_device_properties(dev)
        a = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
        ref = a @ a
        out, ms = _timed(lambda: (a.to(dev) @ a.to(dev)).cpu())
        err = float((out - ref).norm() / ref.norm())
        free, total = torch.cuda.mem_get_info(dev)
        ok = err < 1e-2
        return Check("cuda", ok, f"{props.name}, compute {props.major}.{props.minor}, {props.multi_processor_count} SMs, "
                     f"{free / 2**30:.1f}/{total / 2**30:.1f} GiB free, driver CUDA {torch.version.cuda}; "
                     f"matmul on GPU rel. error {err:.1e} ({ms:.0f} ms incl. transfer)",
                     "" if ok else "the GPU computed a wrong result: check the driver")
    except Exception as exc:  # any CUDA failure is a finding, reported, not raised
        return Check("cuda", False, f"a kernel failed to run: {exc}", "check the NVIDIA driver (nvidia-smi) and torch's CUDA version")


def check_nvenc() -> Check:
    """Open h264_nvenc through PyAV and encode a few frames."""
    import av

    try:
        with av.open("/dev/null", "w", format="mp4") as out:
            stream = out.add_stream("h264_nvenc", rate=25)
            stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(np.full((256, 256, 3), i * 40, np.uint8), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return Check("nvenc", True, "h264_nvenc opened and encoded frames: GPU H.264 encoding available")
    except Exception as exc:  # no encoder / no device: a finding
        return Check("nvenc", False, f"h264_nvenc unavailable ({str(exc).splitlines()[0][:120]}); H.264 is encoded "
                     "by libx264 on the CPU", "normal on CPUs and on data-centre GPUs without NVENC (A100/H100/H200)")


def check_models() -> list[Check]:
    checks = []

    def face_mesh():
        from skimage import data

        from .. import face

        lm = face.find_face(data.astronaut(), source="astronaut")
        return f"mediapipe face mesh: {lm.points.shape[0]} landmarks on the astronaut photo"

    def voice():
        from ..voice import PiperVoice

        v = PiperVoice()
        s = next(v.synthesize("Hello."))
        return f"Piper voice {v.model_path.name}: {s.audio.duration:.2f} s of speech, {len(s.phones)} phones"

    def aligner():
        from ..align import Aligner
        from ..types import AudioChunk

        a = Aligner()
        # Low-level noise, not zeros: digital silence takes a shortcut that skips the decoder.
        noise = np.random.default_rng(0).normal(0, 0.05, (1, 16000)).astype(np.float32)
        phones = a.align(AudioChunk(noise, 16000))
        return f"pocketsphinx en-us acoustic model and phone LM decoded 1 s of noise ({len(phones)} spans)"

    def vad():
        from ..analysis import VoiceActivity

        VoiceActivity().speech_probability(np.zeros(16000, np.float32))
        return "silero-vad model loaded"

    for name, fn in (("face model", face_mesh), ("voice model", voice), ("aligner", aligner), ("vad", vad)):
        try:
            detail, ms = _timed(fn)
            checks.append(Check(name, True, f"{detail} ({ms:.0f} ms)"))
        except Exception as exc:  # a broken install is a finding
            checks.append(Check(name, False, f"failed: {exc}", "reinstall facecast (scripts/setup.sh)"))
    return checks


def run(device: str = "auto", models: bool = True) -> list[Check]:
    """All checks. ``device`` 'cpu' skips the GPU checks; 'cuda'/'auto' run them."""
    checks = [check_python()]
    if device != "cpu":
        checks.append(check_cuda("cuda" if device == "auto" else device))
        checks.append(check_nvenc())
    if models:
        checks.extend(check_models())
    return checks


if __name__ == "__main__":  # pragma: no cover
    for c in run():
        print(("OK  " if c.ok else "FAIL"), c.name, c.detail, c.fix, file=sys.stdout)
