"""Renderer: CPU fast path equals the torch reference; motion shows up where it should, measured
by the face mesh on the rendered frames; the background stays put."""

import numpy as np
import pytest
import torch

from facecast import face
from facecast.errors import DeviceError
from facecast.motion import random_motion
from facecast.options import RenderOptions
from facecast.device import resolve_device
from facecast.render import MeshRenderer
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
    assert eye(m[2]) < 0.6 * eye(m[0])  # the mesh reads a closed lid as ~0.1-0.4, not 0
    assert m[3]["mouth_width"] > m[0]["mouth_width"] + 0.04


def test_lid_painter_closes_the_slit_and_leaves_open_eyes_alone():
    """paint_lids: at blink <= 0.6 nothing changes (bit for bit); at a full blink the band between
    the warped lids (here a slit of blue iris the warp left) takes the skin around it."""
    from facecast.render.paint import paint_lids

    img = torch.empty(1, 3, 20, 40)
    img[:] = torch.tensor([200.0, 160.0, 140.0]).view(1, 3, 1, 1)  # skin
    img[:, :, 9:12, 6:34] = torch.tensor([30.0, 60.0, 200.0]).view(1, 3, 1, 1)  # the slit
    xs = torch.linspace(4, 36, 9)
    up = torch.stack([xs, torch.full_like(xs, 10.0)], -1)[None]
    lo = torch.stack([xs, torch.full_like(xs, 10.5)], -1)[None]
    ex, ey, origin = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2)
    for b in (0.0, 0.3, 0.6):
        assert torch.equal(paint_lids(img, origin, up, lo, torch.tensor([b]), ex, ey), img)
    closed = paint_lids(img, origin, up, lo, torch.tensor([1.0]), ex, ey)
    slit = closed[0, :, 9:12, 8:32]
    assert (slit[0] > slit[2]).all()  # skin-coloured (red over blue), no iris left
    assert slit[0].mean() < 200  # darker along the middle: the lash line
    assert torch.equal(closed[..., :5, :], img[..., :5, :])  # the skin above is not touched


@pytest.mark.parametrize("name", ["sam_512.jpg", "sadtalker_people0.png", "dreamtalk_face3.png",
                                  "hallo_ref7.jpg", "art0_painting.png"])
def test_a_full_blink_reads_as_closed_to_the_face_mesh(name):
    """A drawn blink must be a blink to a viewer: the face mesh's eye opening falls below half
    its open value (the threshold `facecast eval` counts blinks at). Before the lid painter the
    squeezed eyes still read 46-73 % open on these portraits."""
    from conftest import media

    img = face.load_image(media(f"portrait/{name}"))
    p = face.frame_portrait(img, face.find_face(img, source=name), size=512, source=name)
    frames = MeshRenderer(p, RenderOptions()).render(MotionFrames(params(2, blink=[0.0, 1.0]), 25, 0)).frames.numpy()
    with face.MediapipeFaceMesh(max_faces=1) as mesh:
        m = [face.mouth_metrics(mesh.detect(f, source=f"{name} frame {i}")[0].points) for i, f in enumerate(frames)]
    eye = [(d["eye_open_left"] + d["eye_open_right"]) / 2 for d in m]
    assert eye[1] < 0.5 * eye[0], eye


def test_asking_for_cuda_without_cuda_is_an_error_not_a_silent_cpu_run():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="doctor"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError):
        resolve_device("tpu")
