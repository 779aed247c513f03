"""Preprocessing presets built from torchvision.transforms.v2: training augmentation here; the
evaluation preprocessing is the model card's ``Preprocess`` (``resnetkit.card``), re-exported."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torchvision.transforms import v2 as T

from ..card import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ..errors import InvalidOption, MissingDependency

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
    if auto_augment is not None and auto_augment.startswith("rand-m"):  # timm's RandAugment works on PIL images
        ops = [T.RandomResizedCrop(crop_size, interpolation=interp, antialias=True)]
        if hflip > 0:
            ops.append(T.RandomHorizontalFlip(hflip))
        ops += [timm_rand_augment(auto_augment, crop_size, mean, interpolation), T.PILToTensor()]
        return T.Compose(_normalise_and_erase(ops, mean, std, random_erase))
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
    return T.Compose(_normalise_and_erase(ops, mean, std, random_erase))


def _normalise_and_erase(ops: list, mean: Sequence[float], std: Sequence[float], random_erase: float) -> list:
    ops = ops + [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    if random_erase > 0:
        ops.append(T.RandomErasing(p=random_erase))
    return ops


def timm_rand_augment(config: str, crop_size: int, mean: Sequence[float], interpolation: str):
    """timm's RandAugment from its configuration string (``rand-m7-mstd0.5-inc1``: magnitude 7, its
    standard deviation 0.5, the magnitude-increasing op set), with the hyper-parameters timm's own
    training script gives it; the policy the ResNet strikes back recipes use (torchvision's
    RandAugment has no magnitude noise)."""
    try:
        from timm.data.auto_augment import rand_augment_transform
    except ImportError:
        raise MissingDependency(
            f"auto_augment {config} is timm's RandAugment: pip install 'resnetkit[rsb]'", field="auto_augment"
        ) from None
    from PIL import Image

    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    hparams = {
        "translate_const": int(crop_size * 0.45),
        "img_mean": tuple(min(255, round(255 * m)) for m in mean),
        "interpolation": resample.get(interpolation, Image.Resampling.NEAREST),
    }
    try:
        return rand_augment_transform(config, hparams)
    except (AssertionError, ValueError, KeyError) as exc:
        raise InvalidOption(
            f"auto_augment {config!r} is not a RandAugment configuration timm reads ({exc}); e.g. rand-m7-mstd0.5-inc1",
            field="auto_augment",
        ) from None
