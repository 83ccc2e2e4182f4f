"""The multi-stream engine: clients in real time, every frame delivered once, in order."""

import numpy as np

from conftest import media
from facecast import face
from facecast.audio import load_audio
from facecast.engine import LoadTestOptions, run_loadtest


def test_two_live_streams_deliver_every_frame():
    faces = []
    for name in ("sam_512.jpg", "leijun.png"):
        img = face.load_image(media(f"portrait/{name}"))
        faces.append(face.frame_portrait(img, face.find_face(img, source=name), size=96, source=name))
    speech = load_audio(media("audio/jfk_en.flac")).samples[0]
    r = run_loadtest(faces, speech, LoadTestOptions(streams=2, seconds=3.0, size=96, workers=1, encoders=1,
                                                    stagger_s=0.2))
    assert r["frames_expected_per_stream"] == 75
    assert r["frames_min"] == 75 and r["frames_total"] == 150
    assert r["bytes_per_stream"] > 1000  # fragmented MP4 really written
    assert 0.05 < r["ttff_p50_s"] < 5.0  # at least the look-ahead; generous for a loaded CI box
    assert np.isfinite(r["latency_p95_s"])
