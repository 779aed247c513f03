"""Preprocessing presets built from torchvision.transforms.v2: training augmentation here; the
evaluation preprocessing is the model card's ``Preprocess`` (``resnetkit.card``), re-exported."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torchvision.transforms import v2 as T

from ..card import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ..errors import InvalidOption

INTERPOLATIONS = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "INTERPOLATIONS", "Preprocess", "train_transform"]


def train_transform(
    crop_size: int,
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    hflip: float = 0.5,
    auto_augment: Optional[str] = None,
    random_erase: float = 0.0,
) -> T.Compose:
    """torchvision's classification training preset: RandomResizedCrop, flip, optional
    TrivialAugmentWide / RandAugment / AutoAugment, normalize, optional random erasing."""
    interp = INTERPOLATIONS[interpolation]
    ops = [T.PILToTensor(), T.RandomResizedCrop(crop_size, interpolation=interp, antialias=True)]
    if hflip > 0:
        ops.append(T.RandomHorizontalFlip(hflip))
    if auto_augment in (None, "none"):
        pass
    elif auto_augment == "ta_wide":
        ops.append(T.TrivialAugmentWide(interpolation=interp))
    elif auto_augment == "randaugment":
        ops.append(T.RandAugment(interpolation=interp))
    elif auto_augment == "autoaugment":
        ops.append(T.AutoAugment(interpolation=interp))
    else:
        raise InvalidOption(f"auto_augment {auto_augment!r} is not one of none, ta_wide, randaugment, autoaugment")
    ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    if random_erase > 0:
        ops.append(T.RandomErasing(p=random_erase))
    return T.Compose(ops)
