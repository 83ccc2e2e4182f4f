"""The load test (facecast.live.loadtest): simulated clients in real time against an Engine,
every frame delivered once, in order - portraits and twins through the same code."""

import numpy as np
import pytest

from conftest import media
from facecast import face
from facecast.audio import load_audio
from facecast.live.loadtest import run_loadtest
from facecast.live.options import EngineOptions, LoadTestOptions


def _faces():
    faces = []
    for name in ("sam_512.jpg", "leijun.png"):
        img = face.load_image(media(f"portrait/{name}"))
        faces.append(face.frame_portrait(img, face.find_face(img, source=name), size=96, source=name))
    return faces


def test_two_live_streams_deliver_every_frame():
    faces = _faces()
    speech = load_audio(media("audio/jfk_en.flac")).samples[0]
    r = run_loadtest(faces, speech, LoadTestOptions(streams=2, seconds=3.0, stagger_s=0.2,
                                                    engine=EngineOptions(size=96, workers=1, encoders=1)))
    assert r["frames_expected_per_stream"] == 75
    assert r["frames_min"] == 75 and r["frames_total"] == 150
    assert r["bytes_per_stream"] > 1000  # fragmented MP4 really written
    assert 0.05 < r["ttff_p50_s"] < 5.0  # at least the look-ahead; generous for a loaded CI box
    assert np.isfinite(r["latency_p95_s"])
    cpu = r["cpu_per_stream_s"]  # CPU seconds per stream-second, by role
    assert 0.005 < cpu["motion"] < 5 and 0.001 < cpu["encode"] < 5 and cpu["scheduler"] > 0


def test_yuv_hand_over_faster_clock_and_memory_samples():
    """The GPU layout's hand-over (frames as yuv420p through shared memory) run on the CPU, with
    the clients' clock at 3x and memory sampled: still every frame, once, encoded."""
    faces = _faces()
    speech = load_audio(media("audio/jfk_en.flac")).samples[0]
    r = run_loadtest(faces, speech, LoadTestOptions(streams=2, seconds=3.0, stagger_s=0.2, speed=3.0,
                                                    memory_every_s=0.2,
                                                    engine=EngineOptions(size=96, workers=1, encoders=1, i420=True)))
    assert r["frames_min"] == 75 and r["frames_total"] == 150
    assert r["bytes_per_stream"] > 1000
    mem = r["memory"]
    assert len(mem) >= 3
    assert all(m["rss_main_mib"] > 50 and m["rss_workers_mib"] > 50 for m in mem)
    # The stream clock runs 3x the wall clock; the memory run reports stream minutes.
    assert mem[-1]["stream_min"] == pytest.approx(mem[-1]["wall_s"] * 3 / 60, abs=1e-3)
    assert r["wall_s"] < 3.0 / 3.0 + 8.0  # fed at 3x: well under the 3 s a real-time run takes plus start-up


def test_bad_stream_settings_fail_before_any_process_starts():
    with pytest.raises(ValueError, match="lookahead_s"):
        run_loadtest([], np.zeros(16000, np.float32), LoadTestOptions(streams=1, lookahead_s=0.01))
    with pytest.raises(ValueError, match="speed"):
        run_loadtest([], np.zeros(16000, np.float32), LoadTestOptions(streams=1, speed=0))
    with pytest.raises(ValueError, match="workers"):
        EngineOptions(workers=-1)


def test_live_loadtest_tiny_twin(tiny_twin):
    """A twin through the same load test: its sessions run in the engine's process, its frames
    are rendered in one batch per round."""
    from facecast.twin.generate import Twin

    twin = Twin.load(tiny_twin[0], size=128)
    a = load_audio(media("audio/hdtf_radio31_en.wav")).mono()
    r = run_loadtest([twin], a, LoadTestOptions(streams=2, seconds=1.0, stagger_s=0.1,
                                                engine=EngineOptions(size=128, workers=0, encoders=1, threads=2)))
    assert r["frames_total"] == 2 * 25  # every frame of both streams delivered and encoded
    assert r["encoded_mib"] > 0 and r["ttff_p50_s"] >= r["lookahead_s"]  # no frame before its audio
    assert np.isfinite(r["latency_p95_s"])
