"""Renderer: CPU fast path equals the torch reference; motion shows up where it should, measured
by the face mesh on the rendered frames; the background stays put."""

import numpy as np
import pytest
import torch

from facecast import face
from facecast.errors import DeviceError
from facecast.motion import random_motion
from facecast.options import RenderOptions
from facecast.render import MeshRenderer, resolve_device
from facecast.types import MOTION_INDEX, MOTION_PARAMS, MotionFrames


@pytest.fixture(scope="module")
def portrait():
    from skimage import data

    img = data.astronaut()
    lm = face.find_face(img, source="astronaut")
    return face.frame_portrait(img, lm, size=256, source="astronaut")


def params(n, **cols):
    p = np.zeros((n, len(MOTION_PARAMS)), np.float32)
    for k, v in cols.items():
        p[:, MOTION_INDEX[k]] = v
    return p


def random_params(n, seed):
    return random_motion(n, np.random.default_rng(seed))


def test_opencv_fast_path_matches_torch_reference(portrait):
    p = random_params(6, seed=np.random.SeedSequence().entropy % 2**32)
    ref = MeshRenderer(portrait, RenderOptions(backend="torch")).render(MotionFrames(p, 25, 0)).frames.float()
    fast = MeshRenderer(portrait, RenderOptions(backend="opencv")).render(MotionFrames(p, 25, 0)).frames.float()
    diff = (ref - fast).abs()
    assert diff.mean() < 0.6, diff.mean()
    assert torch.quantile(diff.flatten()[::7], 0.999) < 12


def test_rest_pose_reproduces_the_portrait_and_background_never_moves(portrait):
    r = MeshRenderer(portrait, RenderOptions())
    rest = r.render(MotionFrames(params(1), 25, 0)).frames[0].numpy().astype(int)
    assert np.abs(rest - portrait.image).mean() < 1.0
    moving = r.render(MotionFrames(random_params(4, 1), 25, 0)).frames.numpy()
    x0, y0, x1, y1 = r.rig.region
    outside = np.ones(portrait.image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    if outside.any():
        assert (moving[:, outside] == portrait.image[outside]).all()


def test_jaw_blink_and_spread_are_visible_to_the_face_mesh(portrait):
    r = MeshRenderer(portrait, RenderOptions())
    p = params(4)
    p[1, MOTION_INDEX["jaw_open"]] = 0.9
    p[2, MOTION_INDEX["blink"]] = 1.0
    p[3, MOTION_INDEX["lip_spread"]] = 1.0
    frames = r.render(MotionFrames(p, 25, 0)).frames.numpy()
    with face.MediapipeFaceMesh(max_faces=1) as mesh:
        m = [face.mouth_metrics(mesh.detect(f, source=f"frame{i}")[0].points) for i, f in enumerate(frames)]
    assert m[1]["mouth_open"] > m[0]["mouth_open"] + 0.12
    eye = lambda d: (d["eye_open_left"] + d["eye_open_right"]) / 2  # noqa: E731
    assert eye(m[2]) < 0.75 * eye(m[0])  # the mesh reads a closed lid as ~0.1-0.2, not 0
    assert m[3]["mouth_width"] > m[0]["mouth_width"] + 0.04


def test_asking_for_cuda_without_cuda_is_an_error_not_a_silent_cpu_run():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="doctor"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError):
        resolve_device("tpu")
