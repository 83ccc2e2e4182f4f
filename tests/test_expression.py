"""Expression control and emphasis (issue #17): the expressions move the mouth corners and brows
the way their names say, measured by the face mesh on the rendered frames; stressed syllables
raise the brows; the option is checked."""

import numpy as np
import pytest

from conftest import media
from facecast import face
from facecast import landmarks as lm
from facecast.errors import InputError
from facecast.expression import EXPRESSIONS, expression_columns
from facecast.motion import MotionModel
from facecast.options import MotionOptions, RenderOptions
from facecast.render import MeshRenderer
from facecast.types import MOTION_INDEX, MOTION_PARAMS, MotionFrames, PhoneSpan, Speech

FPS = 25.0
EXPR = [MOTION_INDEX[k] for k in ("smile", "brow_raise", "brow_inner")]


def measures(points: np.ndarray) -> dict[str, float]:
    """Face-mesh measures in IOD units, + = up: mouth corners above the lips' middle, brows
    above the eyes, inner brow ends above the eyes."""
    xy = points[:, :2].astype(float)
    eye_r, eye_l = xy[list(lm.RIGHT_EYE_CORNERS)].mean(0), xy[list(lm.LEFT_EYE_CORNERS)].mean(0)
    ex = (eye_l - eye_r) / np.linalg.norm(eye_l - eye_r)
    ey = np.array([-ex[1], ex[0]])
    iod = np.linalg.norm(eye_l - eye_r)
    b = lambda idx: float((xy[list(idx)] @ ey).mean()) / iod  # noqa: E731
    eyes = b(lm.RIGHT_EYE_CORNERS + lm.LEFT_EYE_CORNERS)
    return {"corners": b(lm.LIPS_INNER_UPPER[4:7] + lm.LIPS_INNER_LOWER[4:7]) - b((61, 291)),
            "brows": eyes - b(lm.RIGHT_BROW + lm.LEFT_BROW),
            "inner_brows": eyes - b((107, 55, 336, 285))}


@pytest.fixture(scope="module")
def measured():
    name = "sam_512.jpg"
    img = face.load_image(media(f"portrait/{name}"))
    p = face.frame_portrait(img, face.find_face(img, source=name), size=512, source=name)
    names = list(EXPRESSIONS)
    params = np.zeros((len(names), len(MOTION_PARAMS)), np.float32)
    for i, e in enumerate(names):  # each expression's pose, fully eased in, while speaking
        params[i, EXPR] = expression_columns(e, np.array([1.0]), np.ones(1), np.zeros(1))[0]
    frames = MeshRenderer(p, RenderOptions()).render(MotionFrames(params, FPS, 0)).frames.numpy()
    with face.MediapipeFaceMesh(max_faces=1) as mesh:
        return {e: measures(mesh.detect(f, source=e)[0].points) for e, f in zip(names, frames)}


def test_expressions_move_corners_and_brows_the_way_they_say(measured):
    n = measured["neutral"]
    assert measured["smile"]["corners"] > n["corners"] + 0.01        # corners up
    assert measured["sad"]["corners"] < n["corners"] - 0.01          # corners down
    assert measured["sad"]["inner_brows"] > n["inner_brows"] + 0.01  # inner brows up
    assert measured["surprised"]["brows"] > n["brows"] + 0.015       # brows up
    assert measured["serious"]["brows"] < n["brows"] - 0.01          # brows down


def speech_with_a_stressed_vowel():
    """Quiet short vowels and one loud long one at 1.5 s."""
    phones, t = [], 0.2
    for k in range(8):
        dur = 0.22 if k == 4 else 0.08
        phones += [PhoneSpan("T", t, t + 0.06), PhoneSpan("AH", t + 0.06, t + 0.06 + dur)]
        t += 0.06 + dur + 0.1
    n = int(4.0 * FPS)
    energy = np.full(n, 0.35, np.float32)
    loud = phones[9]
    energy[int(loud.start * FPS):int(loud.end * FPS) + 1] = 0.9
    return Speech(tuple(phones), energy, np.ones(n, bool), FPS, 0), (loud.start + loud.end) / 2


def test_brows_rise_and_the_head_nods_on_a_stressed_syllable():
    speech, t_loud = speech_with_a_stressed_vowel()
    m = MotionModel(MotionOptions(seed=1)).frames(speech)
    brow = m.column("brow_raise")
    peak = int(np.argmax(brow)) / FPS
    assert brow.max() > 0.1 and abs(peak - t_loud) < 0.3, (brow.max(), peak, t_loud)
    assert np.abs(brow[: int(0.9 * FPS)]).max() < 0.02  # quiet vowels: no raise
    flat = MotionModel(MotionOptions(seed=1)).frames(Speech((), speech.energy * 0, speech.voiced * False, FPS, 0))
    assert np.abs(flat.column("brow_raise")).max() == 0.0
    nod = m.column("head_pitch") - MotionModel(MotionOptions(seed=1)).frames(
        Speech(speech.phones, np.full_like(speech.energy, 0.35), speech.voiced, FPS, 0)).column("head_pitch")
    assert nod[int(t_loud * FPS) - 5:int(t_loud * FPS) + 8].max() > 0.005  # nods down on it


def test_the_expression_option_is_checked_and_neutral_is_the_default():
    assert MotionOptions().expression == "neutral"
    with pytest.raises(InputError, match="happy"):
        MotionModel(MotionOptions(expression="happy"))
    speech, _ = speech_with_a_stressed_vowel()
    smile = MotionModel(MotionOptions(expression="smile")).frames(speech).column("smile")
    assert smile[0] == 0.0 and smile[-1] > 0.4  # eased in, then held


def test_cli_refuses_an_unknown_expression(tmp_path):
    """`say --expression grumpy`: one error line naming the flag and the choices, exit 2, nothing written."""
    from typer.testing import CliRunner

    from facecast.cli import app

    out = tmp_path / "o.mp4"
    r = CliRunner().invoke(app, ["say", "face.png", "--text", "Hi.", "--expression", "grumpy", "-o", str(out)])
    assert r.exit_code == 2
    assert "--expression grumpy: must be one of neutral, smile, serious, surprised, sad" in " ".join(r.output.split())
    assert not out.exists()
