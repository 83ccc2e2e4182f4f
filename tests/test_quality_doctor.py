"""doctor tells the truth: checks run things, a CUDA request without CUDA is an error."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facecast.quality import doctor

CLI = [str(Path(sys.executable).with_name("facecast"))]


def test_models_really_load():
    checks = {c.name: c for c in doctor.check_models()}
    assert set(checks) == {"face model", "voice model", "aligner", "vad"}
    for c in checks.values():
        assert c.ok, (c.name, c.detail)
    assert "478 landmarks" in checks["face model"].detail
    assert "phones" in checks["voice model"].detail


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_check_fails_honestly_without_a_gpu():
    c = doctor.check_cuda()
    assert not c.ok and "CUDA" in c.detail and c.fix
    res = subprocess.run(CLI + ["doctor", "--device", "cuda", "--no-models"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "error:" in res.stderr and "--device cuda" in res.stderr and "Traceback" not in res.stderr


def test_cpu_doctor_passes():
    res = subprocess.run(CLI + ["doctor", "--device", "cpu", "--no-models"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "python/torch" in res.stdout
