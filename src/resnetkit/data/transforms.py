"""Preprocessing presets built from torchvision.transforms.v2."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

import torch
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATIONS = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


@dataclass
class Preprocess:
    """Evaluation preprocessing: resize the short side, center crop, scale to [0, 1], normalize."""

    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        keys = {"resize_size", "crop_size", "interpolation", "mean", "std"}
        return cls(**{k: v for k, v in d.items() if k in keys})

    def transform(self) -> T.Compose:
        """PIL image or uint8 tensor -> normalized float tensor (C, crop, crop).

        A PIL image is resized and cropped by PIL before conversion, exactly as torchvision's
        ``weights.transforms()`` does, so published accuracies reproduce bit for bit.
        """
        return T.Compose(
            [
                T.Resize(self.resize_size, interpolation=INTERPOLATIONS[self.interpolation], antialias=True),
                T.CenterCrop(self.crop_size),
                T.ToImage(),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(self.mean, self.std),
            ]
        )


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
        raise ValueError(f"auto_augment {auto_augment!r} is not one of none, ta_wide, randaugment, autoaugment")
    ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    if random_erase > 0:
        ops.append(T.RandomErasing(p=random_erase))
    return T.Compose(ops)
