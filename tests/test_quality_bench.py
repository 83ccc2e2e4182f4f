"""facecast bench: memory sampling, inputs, one short real run through the CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from conftest import media

from facecast.errors import InputError
from facecast.quality import bench
from facecast.quality.options import BenchOptions
from facecast.sysinfo import MemorySampler, peak_rss_mb


def test_memory_sampler_sees_an_allocation():
    # This process alone: worker processes left by earlier tests (the alignment pool lives as
    # long as the process) would count in the sampler's RSS but not in this process's VmHWM.
    with MemorySampler(interval=0.05, children=False) as mem:
        time.sleep(0.12)
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        time.sleep(0.2)
        del block
        time.sleep(0.05)
    assert len(mem.samples) >= 5
    assert all(m > 0 for _, m in mem.samples)
    assert mem.peak - mem.samples[0][1] > 200
    assert mem.at_fraction(0.0) == mem.samples[0][1]
    assert peak_rss_mb() >= mem.peak - 1


def test_speech_wav_is_exactly_long_and_starts_with_speech(tmp_path):
    from facecast.audio import load_audio, open_audio

    src = media("audio/speech60s_en.wav")  # starts with ~3 s of near silence
    out = bench.make_speech_wav(src, 7.5, tmp_path / "s.wav")
    info = open_audio(out)
    assert info.sample_rate == open_audio(src).sample_rate and info.channels == 1
    x = load_audio(out).samples[0]
    assert x.shape[0] == pytest.approx(7.5 * 16000, abs=2)
    assert np.abs(x[:8000]).max() > 0.05  # speech within the first 0.5 s


def test_a_missing_speech_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="Pass --speech FILE"):
        bench._inputs(BenchOptions(speech=tmp_path / "nope.wav"), 2.5, tmp_path)


def test_without_a_speech_file_the_bundled_voice_speaks(tmp_path):
    from facecast.audio import load_audio, open_audio

    out = bench.voice_speech_wav(tmp_path / "v.wav", "Hello there, this is a short test.")
    x = load_audio(out).samples[0]
    assert open_audio(out).channels == 1 and 1.0 < x.shape[0] / 16000 < 5.0
    assert np.abs(x).max() > 0.1


def test_render_events_patch_is_restored():
    from facecast import sources

    original = sources.make_renderer
    with bench._cuda_render_events(True) as events:
        assert sources.make_renderer is not original
        assert events == []
    assert sources.make_renderer is original


def test_bench_cli_measures_a_short_run(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app

    js, md = tmp_path / "bench.json", tmp_path / "benchmarks.md"
    args = ["bench", "--durations", "2.5", "--sizes", "128", "--repeats", "2", "--json", str(js), "--append", str(md)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["git"]
    (case,) = data["cases"]
    assert case["size"] == 128 and case["device"] == "cpu"
    assert case["frames"] == 63  # ceil(2.5 s * 25 fps)
    assert case["duration_s"] == pytest.approx(2.5, abs=0.1)
    for key in ("wall_s", "rtf", "fps", "first_chunk_s", "ttfc_warmup_s", "ttfc_p50_s", "ttfc_p95_s", "rss_peak_mb"):
        assert case[key] > 0, key
    assert case["ttfc_p95_s"] >= case["ttfc_p50_s"]
    assert len(case["ttfc_runs"]) == 3
    assert case["stages"]["render"] > 0 and case["stages"]["align"] > 0
    assert set(case["rss_at"]) == {"10%", "50%", "90%"} and len(case["rss_samples"]) >= 2
    assert case["vram_peak_mb"] is None and len(case["load_avg"]) == 2
    text = md.read_text()
    assert text.startswith("# facecast benchmarks") and "| audio 2.5 s | 128 | cpu |" in text
    # A second run appends a section instead of replacing the file.
    bench.append_markdown(md, [], "facecast bench", data["machine"])
    assert md.read_text().count("\n## ") == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_bench_on_cuda_without_cuda_is_a_clear_error():
    from facecast.errors import DeviceError

    with pytest.raises(DeviceError, match="CUDA is not available"):
        bench.run_bench(BenchOptions(device="cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_on_cuda_reports_vram_and_event_timed_render(tmp_path):
    media("audio/speech60s_en.wav")
    (r,) = bench.run_bench(BenchOptions(durations=(2.0,), sizes=(256,), device="cuda", repeats=1))
    assert r.vram_peak_mb > 0 and r.render_gpu_s > 0
