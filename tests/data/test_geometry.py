"""Preprocess.geometry is written over PIL (torchvision's import costs a one-image job 1.8 s); its
pixels are torchvision's Resize + CenterCrop's (and timm's squash and border, tests/weights/test_hub.py)
at every size that has an edge: odd, tiny, narrow, already the size, smaller than the crop."""

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from resnetkit.card import Preprocess

SIZES = [(500, 375), (375, 500), (256, 256), (255, 257), (224, 224), (301, 99), (7, 900), (3, 2), (1, 1), (200, 230)]


def photo(width, height, mode):
    rng = np.random.default_rng(width * 1000 + height)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_center_crop_is_torchvisions(mode, interpolation):
    pre = Preprocess(256, 224, interpolation)
    how = InterpolationMode(interpolation)
    for size in SIZES:
        image = photo(*size, mode)
        want = F.center_crop(F.resize(image, [256], interpolation=how, antialias=True), [224])
        assert np.array_equal(np.asarray(pre.geometry(image)), np.asarray(want)), size


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_squash_and_border_are_torchvisions_steps(mode):
    squash = Preprocess(236, 224, "bicubic", crop_mode="squash")
    border = Preprocess(224, 224, "bicubic", crop_mode="border", mean=(0.5, 0.25, 0.125))
    fill = (128, 64, 32)
    for size in SIZES:
        image = photo(*size, mode)
        want = F.center_crop(F.resize(image, [236, 236], interpolation=InterpolationMode.BICUBIC), [224])
        assert np.array_equal(np.asarray(squash.geometry(image)), np.asarray(want)), size
        ratio = max(size) / 224
        resized = F.resize(image, [round(size[1] / ratio), round(size[0] / ratio)], InterpolationMode.BICUBIC)
        w, h = resized.size
        pad_w, pad_h = max(224 - w, 0), max(224 - h, 0)
        padded = F.pad(resized, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2],
                       fill=fill[0] if mode == "L" else fill)  # fmt: skip
        got = np.asarray(border.geometry(image))
        assert got.shape[:2] == (224, 224) and np.array_equal(got, np.asarray(F.center_crop(padded, [224]))), size
