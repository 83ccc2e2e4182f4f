"""facecast.show.listen and Show.direct: the speaker's mouth moves with its words; listeners keep
their mouth closed yet are never frozen (blinks, nods, head drift, gaze to the speaker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.show import ScriptOptions, example_script, parse_script
from facecast.show.cast import open_cast
from facecast.show.layout import Layout
from facecast.show.listen import GAZE_RAD, Gaze, NodSchedule
from facecast.show.render import Show
from facecast.show.timeline import Timeline
from facecast.timing import Timings
from facecast.types import MOTION_INDEX

MOUTH = ["jaw_open", "lip_spread", "lip_round", "lip_close", "labiodental", "upper_lip"]


def test_nods_are_the_same_in_windows_and_whole():
    t = np.arange(0, 30, 0.04)
    whole = NodSchedule(3).pitch(t)
    parts = NodSchedule(3)
    chunked = np.concatenate([parts.pitch(t[i:i + 37]) for i in range(0, t.size, 37)])
    assert np.allclose(whole, chunked)
    assert whole.max() > 0.01 and (whole > 0.001).mean() < 0.5  # nods, not a constant tilt
    assert not np.allclose(whole, NodSchedule(4).pitch(t))


def test_gaze_eases_towards_its_target_and_carries_over():
    g = Gaze(25.0)
    a = g.yaw(0.1, 10)
    b = g.yaw(0.1, 40)
    assert 0 < a[0] < a[-1] < b[0] < b[-1] <= 0.1 + 1e-9
    assert b[-1] > 0.095
    assert np.all(np.diff(np.concatenate([a, b])) >= 0)


@pytest.fixture(scope="module")
def directed():
    """Every beat of the example show directed in a 256x128 split: per face, the motion rows and
    whether the face was speaking (and a few rendered listener frames)."""
    script = parse_script(example_script())
    options = ScriptOptions(width=256, height=128)
    layout = Layout("split", (256, 128), list(script.speakers), background=(0, 0, 0), captions=False)
    cast = open_cast(script, options, layout.face_side)
    show = Show(script, cast, layout, options, None, torch.device("cpu"), Timings())
    rows = {n: [] for n in cast}
    speaking = {n: [] for n in cast}
    spoken = {n: [] for n in cast}  # voiced frames: inside a sentence with phones
    rendered = []
    timeline = Timeline(script, {n: (m.voice, m.speaker.rate) for n, m in cast.items()}, 25.0, 48000, 0.25, 12.0)
    for beat in timeline.beats():
        drives = show.direct(beat)
        for name, d in drives.items():
            rows[name].append(d.params)
            speaking[name].append(np.full(d.num_frames, beat.speaker == name))
            spoken[name].append(np.full(d.num_frames, beat.speaker == name and bool(beat.segment.phones)))
        if beat.speaker == "HOST" and len(rendered) < 1 and beat.segment.num_frames >= 20:
            rendered.append(cast["GUEST"].source.render(drives["GUEST"]).frames)
    return ({n: np.concatenate(v) for n, v in rows.items()}, {n: np.concatenate(v) for n, v in speaking.items()},
            {n: np.concatenate(v) for n, v in spoken.items()}, rendered)


def test_listeners_keep_the_mouth_closed(directed):
    rows, speaking, _, _ = directed
    for name in rows:
        listening = rows[name][~speaking[name]]
        assert listening.shape[0] > 50
        mouth = listening[:, [MOTION_INDEX[m] for m in MOUTH]]
        assert np.abs(mouth).max() == 0.0, name


def test_the_speaker_mouth_moves_with_its_words(directed):
    rows, _, spoken, _ = directed
    for name in rows:
        jaw = rows[name][spoken[name], MOTION_INDEX["jaw_open"]]
        assert jaw.max() > 0.3 and jaw.std() > 0.05, name
        closes = rows[name][spoken[name], MOTION_INDEX["lip_close"]]
        assert closes.max() > 0.9, name  # p/b/m close the lips


def test_listeners_are_never_frozen(directed):
    rows, speaking, _, rendered = directed
    for name in rows:
        listening = rows[name][~speaking[name]]
        assert listening[:, MOTION_INDEX["blink"]].max() > 0.9 or rows[name][:, MOTION_INDEX["blink"]].max() > 0.9
        for col in ("head_yaw", "head_pitch"):
            x = listening[:, MOTION_INDEX[col]]
            assert np.abs(np.diff(x)).max() > 1e-4, (name, col)
        # no run of 1 s (25 frames) with an identical pose
        pose = rows[name][:, [MOTION_INDEX[c] for c in ("head_yaw", "head_pitch", "head_roll", "blink")]]
        same = np.all(np.abs(np.diff(pose, axis=0)) < 1e-6, axis=1)
        run = max((len(s) for s in "".join("1" if v else "0" for v in same).split("0")), default=0)
        assert run < 25, (name, run)
    frames = rendered[0].float()
    assert (frames[1:] - frames[:-1]).abs().amax(dim=(1, 2, 3)).min() > 0  # every rendered frame differs


def test_listeners_turn_towards_the_speaker(directed):
    rows, speaking, _, _ = directed
    yaw = rows["GUEST"][:, MOTION_INDEX["head_yaw"]]  # GUEST sits right: HOST is to the picture's left
    assert yaw[~speaking["GUEST"]].mean() < yaw[speaking["GUEST"]].mean() - GAZE_RAD / 3
    yaw = rows["HOST"][:, MOTION_INDEX["head_yaw"]]
    assert yaw[~speaking["HOST"]].mean() > yaw[speaking["HOST"]].mean() + GAZE_RAD / 3
