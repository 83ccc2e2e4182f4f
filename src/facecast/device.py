"""Which torch device runs the work: asking for CUDA that cannot run is an error with a fix,
never a silent CPU fallback."""

from __future__ import annotations

import logging

import torch

from .errors import DeviceError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'cpu' | 'cuda' | 'cuda:N' | 'auto' -> torch.device. Asking for CUDA that cannot run is an
    error with a fix, never a silent CPU fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("device auto: CUDA not available, rendering on the CPU")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name}: CUDA is not available to torch {torch.__version__} "
                f"(built for CUDA {torch.version.cuda or 'none'}). Install a CUDA build of torch and a "
                "working NVIDIA driver, or use --device cpu; `facecast doctor` checks the set-up."
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present. Use cuda:0.")
        return dev
    if name != "cpu":
        raise DeviceError(f"--device {name}: unknown device. Use cpu, cuda, cuda:N or auto.")
    return torch.device("cpu")
