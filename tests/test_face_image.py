"""facecast.face.image: loading files and arrays, the messages for bad files, EXIF orientation."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import media
from face_helpers import assert_plausible, load_portraits, portrait
from facecast import face as F
from facecast.errors import InputError


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    """name -> uint8 RGB image (loaded once per session)."""
    return load_portraits()


# Loading


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", r"empty \(0 bytes\)"),
        ("text", "is a text file, not an image"),
        ("html", r"web page \(HTML\)"),
        ("garbage", "is not an image"),
        ("truncated", "damaged or truncated"),
        ("bomb", "too large"),
        ("heic", "HEIC"),
    ],
)
def test_bad_files(case, message, tmp_path):
    path = tmp_path / f"{case}.jpg"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("Hello, this is not a photo.\n" * 10)
    elif case == "html":
        path.write_text("<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n")
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "truncated":
        data = media("portrait/sam_512.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bomb":
        path = tmp_path / "bomb.png"
        png_header_only(path, 20000, 20000)
    elif case == "heic":
        path = tmp_path / "photo.heic"
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
    with pytest.raises(InputError) as err:
        F.load_image(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ")
    assert re.search(message, text), text
    assert "\n" not in text and text.rstrip().count(". ") >= 1  # what is wrong. what to do


def test_image_modes(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)

    gray = rgb[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    out = F.load_image(tmp_path / "gray.png")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], gray)

    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    assert F.load_image(tmp_path / "palette.gif").shape == (40, 60, 3)

    rgba = np.dstack([rgb, np.full((40, 60), 255, np.uint8)])
    rgba[:, :30, 3] = 0  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = F.load_image(tmp_path / "rgba.png")
    assert (out[:, :30] == F.BACKGROUND_RGB).all()
    np.testing.assert_array_equal(out[:, 30:], rgb[:, 30:])

    deep = (gray.astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    np.testing.assert_array_equal(F.load_image(tmp_path / "gray16.png")[:, :, 0], gray)

    # EXIF orientation 6: stored rotated, displayed after a 90 degree clockwise turn.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = F.load_image(tmp_path / "rotated.jpg")
    assert out.shape == (60, 40, 3)


def test_animated_image_uses_its_first_frame_and_says_so(tmp_path, caplog):
    """An animated GIF (or WebP/APNG) silently became its first frame; now a warning names the
    file and the frame count."""
    rng = np.random.default_rng(3)
    frames = [Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = F.load_image(tmp_path / "anim.gif")
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, np.asarray(Image.open(tmp_path / "anim.gif").convert("RGB")))
    assert "anim.gif" in caplog.text and "animated" in caplog.text and "3 frames" in caplog.text
    caplog.clear()
    frames[0].save(tmp_path / "still.gif")
    F.load_image(tmp_path / "still.gif")
    assert "animated" not in caplog.text


def test_exif_rotated_portrait_is_upright(tmp_path, portraits, tracker):
    image = portrait(portraits, "sam_512.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns it 90 degrees clockwise
    Image.fromarray(image).rotate(90, expand=True).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert_plausible(F.find_face(tmp_path / "phone.jpg", tracker=tracker))


def test_arrays():
    rng = np.random.default_rng(3)
    f = rng.random((20, 30, 3))
    np.testing.assert_array_equal(F.load_image(f), np.rint(f * 255).astype(np.uint8))
    assert F.load_image(np.zeros((20, 30), np.uint8)).shape == (20, 30, 3)
    assert F.load_image(np.zeros((20, 30, 4), np.uint16)).shape == (20, 30, 3)
    with pytest.raises(InputError, match=r"^<array>: .*shape"):
        F.load_image(np.zeros((20, 30, 2), np.uint8))
    with pytest.raises(InputError, match=r"^<array>: .*NaN"):
        F.load_image(np.full((20, 30, 3), np.nan))


# ---------------------------------------------------------------------------------------------
