"""Robust decoding of every image mode users throw at us, and clear errors for broken files."""

import numpy as np
import pytest
from PIL import Image

from resnetkit.data import decode
from resnetkit.data.decode import ImageDecodeError, load_image

from ..imagegen import class_image, write_broken_files


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_modes_become_rgb(tmp_path, mode):
    path = tmp_path / ("img.tif" if mode == "CMYK" else "img.png")
    img = class_image(1, 0).convert(mode)
    img.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (40, 40)


def test_rgba_transparency_composites_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_16bit_png_scales_range(tmp_path):
    arr = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = np.asarray(load_image(tmp_path / "deep.png"))
    assert out.max() == 255 and out.min() == 0


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (10, 30)


def test_broken_files_raise_named_errors(tmp_path):
    empty, text, truncated = write_broken_files(tmp_path)
    with pytest.raises(ImageDecodeError, match="empty file"):
        load_image(empty)
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_image(text)
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(truncated)
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(tmp_path / "big.png")
