"""The stem of a ResNet (what runs before the first stage), in every form the family uses:

- ``""``: torchvision's 7x7 stride-2 convolution (64 channels), norm, ReLU, 3x3 stride-2 max-pool;
- ``"deep"``: ResNet-C (He et al. 2019, "Bag of Tricks"): three 3x3 convolutions,
  ``stem_width``, ``stem_width``, ``2 * stem_width`` channels;
- ``"deep_tiered"``: the same, narrower at first: ``3 * (stem_width // 4)``, ``stem_width``,
  ``2 * stem_width`` (timm's "T" ResNets);
- ``"small"``: one 3x3 stride-1 convolution and no max-pool (CIFAR-sized inputs).

The max-pool may instead be a strided 3x3 convolution with norm and ReLU (``replace_stem_pool``:
ResNet-RS), or anti-aliased (``aa_layer``: a 2x2 average pool for "avg"; a stride-1 max-pool and a
blur for "blur"). Module names are torchvision's and timm's (``conv1``, ``bn1``, ``maxpool``), so
their weights load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from torch import nn

from ..errors import InvalidOption
from .attention import anti_alias
from .blocks import NormLayer, conv3x3

STEM_TYPES = ("", "deep", "deep_tiered", "small")


@dataclass
class Stem:
    conv1: nn.Module
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    channels: int  # what the first stage receives
    reduction: int  # of the stem's activation (feature 0)
    pool_reduction: int  # of the max-pool's output (what the first stage receives)


def build_stem(
    in_chans: int,
    stem_type: str,
    stem_width: int,
    norm_layer: NormLayer,
    replace_stem_pool: bool = False,
    aa_layer: Optional[str] = None,
) -> Stem:
    """The stem's modules, built in timm's and torchvision's order (their RNG draws and keys)."""
    if stem_type not in STEM_TYPES:
        raise InvalidOption(
            f"stem_type {stem_type!r} is not one of {', '.join(map(repr, STEM_TYPES))}", field="stem_type"
        )
    deep = stem_type in ("deep", "deep_tiered")
    channels = 2 * stem_width if deep else 64
    conv1: nn.Module
    if deep:
        first = 3 * (stem_width // 4) if stem_type == "deep_tiered" else stem_width
        conv1 = nn.Sequential(
            conv3x3(in_chans, first, stride=2),
            norm_layer(first),
            nn.ReLU(inplace=True),
            conv3x3(first, stem_width),
            norm_layer(stem_width),
            nn.ReLU(inplace=True),
            conv3x3(stem_width, channels),
        )
    elif stem_type == "small":
        conv1 = conv3x3(in_chans, channels)
    else:
        conv1 = nn.Conv2d(in_chans, channels, kernel_size=7, stride=2, padding=3, bias=False)
    bn1, relu = norm_layer(channels), nn.ReLU(inplace=True)
    if stem_type == "small":
        return Stem(conv1, bn1, relu, nn.Identity(), channels, 1, 1)
    maxpool: nn.Module
    if replace_stem_pool:  # ResNet-RS: a strided convolution downsamples instead of a max-pool
        parts: List[nn.Module] = [conv3x3(channels, channels, stride=1 if aa_layer else 2)]
        parts += [anti_alias(aa_layer, channels, 2)] if aa_layer else []
        maxpool = nn.Sequential(*parts, norm_layer(channels), nn.ReLU(inplace=True))
    elif aa_layer == "avg":
        maxpool = nn.AvgPool2d(2)
    elif aa_layer is not None:
        maxpool = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), anti_alias(aa_layer, channels, 2))
    else:
        maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return Stem(conv1, bn1, relu, maxpool, channels, 2, 4)
