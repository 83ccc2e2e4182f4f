"""facecast.show.layout: where faces sit, the composed picture, the solo director."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.show import example_script
from facecast.show.layout import Director, Layout, grid_shape


def overlap(a, b) -> bool:
    return a.fx < b.fx + b.side and b.fx < a.fx + a.side and a.fy < b.fy + b.side and b.fy < a.fy + a.side


@pytest.mark.parametrize("kind,n,size,side", [
    ("split", 2, (1280, 720), 640), ("split", 3, (1280, 720), 426), ("grid", 4, (1280, 720), 360),
    ("grid", 3, (1280, 720), 426), ("grid", 5, (1280, 720), 360), ("solo", 3, (1280, 720), 720),
    ("split", 2, (256, 128), 128), ("grid", 2, (128, 256), 128),
])
def test_faces_fit_inside_the_picture_without_overlapping(kind, n, size, side):
    names = [f"S{i}" for i in range(n)]
    lay = Layout(kind, size, names, background=(0, 0, 0), captions=False)
    assert lay.face_side == side and side % 2 == 0
    W, H = size
    for c in lay.cells.values():
        assert 0 <= c.fx and c.fx + c.side <= W and 0 <= c.fy and c.fy + c.side <= H
    if kind != "solo":
        cells = list(lay.cells.values())
        assert not any(overlap(a, b) for i, a in enumerate(cells) for b in cells[i + 1:])
        assert [c.fx for c in cells[:2]] == sorted(c.fx for c in cells[:2])  # seat order, left to right


def test_grid_shape_prefers_the_largest_faces():
    assert grid_shape(4, 1280, 720) == (2, 2)
    assert grid_shape(2, 1280, 720) == (2, 1)
    assert grid_shape(2, 720, 1280) == (1, 2)
    assert grid_shape(6, 1920, 1080) == (3, 2)


def test_compose_puts_each_face_in_its_square_over_the_background():
    lay = Layout("split", (256, 128), ["A", "B"], background=(10, 20, 30), captions=False)
    a = torch.full((3, 128, 128, 3), 200, dtype=torch.uint8)
    b = torch.full((3, 128, 128, 3), 50, dtype=torch.uint8)
    out = lay.compose({"A": a, "B": b}, 3)
    assert out.shape == (3, 128, 256, 3) and out.dtype == torch.uint8
    assert (out[:, :, :128] == 200).all() and (out[:, :, 128:] == 50).all()
    solo = Layout("solo", (256, 128), ["A", "B"], background=(10, 20, 30), captions=False)
    out = solo.compose({"B": b}, 3)
    assert (out[:, :, 64:192] == 50).all()
    assert out[0, 0, 0].tolist() == [10, 20, 30] and out[0, 0, 255].tolist() == [10, 20, 30]


def test_faces_of_another_size_are_fitted():
    lay = Layout("solo", (128, 128), ["A"], background=(0, 0, 0), captions=False)
    out = lay.compose({"A": torch.full((1, 64, 32, 3), 255, dtype=torch.uint8)}, 1)
    cols = torch.nonzero(out[0, 64, :, 0]).flatten()
    assert out[0, :, 64, 0].min() == 255  # scaled to the full height
    assert 60 <= cols.numel() <= 68      # keeping its 1:2 aspect


def test_captions_and_background_image():
    img = example_script().parent / "hopper.jpg"
    lay = Layout("split", (256, 128), ["ANA", "BEN"], background=img, captions=True)
    bg = lay.background.cpu().numpy()
    assert bg.shape == (128, 256, 3) and bg.std() > 10  # the picture, not a flat colour
    black = torch.zeros((1, 128, 128, 3), dtype=torch.uint8)
    out = lay.compose({"ANA": black, "BEN": black}, 1)
    assert out[0, 100:, :128].max() > 200  # the name drawn (white) at the bottom of the face
    top = Layout("split", (256, 128), ["ANA", "BEN"], background=(0, 0, 0), captions=True, captions_top=True)
    out = top.compose({"ANA": black, "BEN": black}, 1)
    assert out[0, :30, :128].max() > 200 and out[0, 100:, :128].max() == 0


def test_direction_points_at_the_speaker():
    lay = Layout("split", (384, 128), ["A", "B", "C"], background=(0, 0, 0), captions=False)
    assert lay.direction("A", "C") > 0 and lay.direction("C", "A") < 0 and lay.direction("B", "B") == 0
    assert lay.direction("A", None) == 0
    solo = Layout("solo", (128, 128), ["A", "B"], background=(0, 0, 0), captions=False)
    assert solo.direction("A", "B") == -solo.direction("B", "A") != 0
    assert solo.visible("B") == ["B"] and lay.visible("B") == ["A", "B", "C"]


def test_director_cuts_on_line_boundaries_after_the_minimum_shot():
    d = Director(min_shot_s=2.0)
    assert d.line_starts("A", 0.0) == "A"
    assert d.line_starts("B", 1.0) == "A"      # A's shot has lasted 1 s: hold
    assert d.line_starts("B", 2.5) == "B"      # cut
    assert d.line_starts("A", 3.0) == "B"
    assert d.line_starts("A", 4.5) == "A"
    assert d.cuts == 2
    d0 = Director(min_shot_s=0.0)
    assert [d0.line_starts(s, t) for s, t in (("A", 0), ("B", 0.1), ("A", 0.2))] == ["A", "B", "A"]


def test_background_colour_fills_the_picture():
    lay = Layout("grid", (200, 100), ["A", "B", "C"], background=(1, 2, 3), captions=False)
    out = lay.compose({}, 2).numpy()
    assert np.all(out == np.array([1, 2, 3], np.uint8))
