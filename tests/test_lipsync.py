"""Lip sync is real: generated videos measured with the face mesh (the same mesh a viewer's eye
would trust least: it never saw our renderer)."""

import numpy as np
import pytest

from facecast import face
from facecast.options import MotionOptions, SayOptions
from facecast.pipeline import say_chunks

FPS = 25.0
LEAD = MotionOptions().lead_s  # the mouth shows a phone this much before it sounds


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    img = data.astronaut()
    return face.frame_portrait(img, face.find_face(img, source="astronaut"), size=320, source="astronaut")


def render(portrait, **kw):
    opts = SayOptions(size=320, motion=MotionOptions(head_motion=0.0, blinks_per_minute=kw.pop("bpm", 15.0)))
    chunks = list(say_chunks(portrait, options=opts, **kw))
    frames = np.concatenate([c.video.frames.numpy() for c in chunks])
    phones = [p for c in chunks for p in (c.segment.phones or ())]
    return frames, phones


def measure(frames):
    with face.MediapipeFaceMesh(max_faces=1) as mesh:
        pts = np.stack([mesh.detect(f, source=f"frame {i}")[0].points for i, f in enumerate(frames)])
    return face.mouth_metrics(pts)


def test_rounded_and_spread_sentences_have_different_lip_shapes(astronaut):
    oo_frames, oo_ph = render(astronaut, text="Who knew you could woo a cool moose, too?")
    ee_frames, ee_ph = render(astronaut, text="We see three green trees, Steve, see?")
    oo, ee = measure(oo_frames), measure(ee_frames)

    def speech_ratio(m, phones, vowels):
        idx = [int(round(((p.start + p.end) / 2 - LEAD) * FPS)) for p in phones if p.phone in vowels]
        idx = [i for i in idx if i < len(m["mouth_width"])]
        return float(np.median(m["mouth_width"][idx] / np.maximum(m["mouth_open"][idx] + 0.05, 0.05)))

    r_oo = speech_ratio(oo, oo_ph, {"UW", "UH", "OW"})
    r_ee = speech_ratio(ee, ee_ph, {"IY", "IH", "EY"})
    # Spread vowels: wide and flat; rounded: narrow. Require a clear margin (20 %).
    assert r_ee > 1.2 * r_oo, (r_ee, r_oo)
    assert np.median(ee["mouth_width"]) > np.median(oo["mouth_width"]) + 0.03


def test_lips_close_on_bilabials_and_open_on_vowels(astronaut):
    frames, phones = render(astronaut, text="Mama bought a bobcat, Pam. Maybe, Bob.")
    m = measure(frames)
    rest = measure(np.asarray(astronaut.image)[None])["mouth_open"][0]
    at = lambda p: min(int(round(((p.start + p.end) / 2 - LEAD) * FPS)), len(frames) - 1)  # noqa: E731
    bil = np.array([m["mouth_open"][at(p)] for p in phones if p.phone in ("M", "B", "P")])
    vow = np.array([m["mouth_open"][at(p)] for p in phones if p.phone in ("AA", "AE", "AH", "AO")])
    assert len(bil) >= 6 and len(vow) >= 4
    # At bilabials the mouth is (nearly) as closed as the portrait at rest; vowels are open.
    assert np.median(bil) < rest + 0.05, (np.median(bil), rest)
    assert np.median(vow) > np.median(bil) + 0.1, (np.median(vow), np.median(bil))


def test_blinks_occur_and_are_visible(astronaut):
    frames, _ = render(astronaut, text="I will keep talking for a little while now, so that you can see my eyes blink "
                                       "naturally, every few seconds, like a real person would.", bpm=30.0)
    m = measure(frames)
    eye = (m["eye_open_left"] + m["eye_open_right"]) / 2
    base = np.median(eye)
    dips = np.nonzero((eye < 0.8 * base))[0]
    assert dips.size >= 1, (eye.min(), base)
