"""The architectures, as data: block, stage depths and the options that define each name.

Every name is registered with ``register_model`` at import; weights are layered on top by
``resnetkit.weights.factory``, whose public builders (``resnet50(weights=...)``) build from here.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Tuple, Type

from ..errors import InvalidOption
from .blocks import BasicBlock, Bottleneck
from .cifar import CifarResNet
from .registry import register_model
from .resnet import ResNet

Spec = Tuple[Type[Any], Tuple[int, ...], Dict[str, Any]]

# name -> (block, stage depths, fixed options). Users may not override the fixed options: they
# are what makes the name mean what it says.
ARCHITECTURES: Dict[str, Spec] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), {}),
    "resnet34": (BasicBlock, (3, 4, 6, 3), {}),
    "resnet50": (Bottleneck, (3, 4, 6, 3), {}),
    "resnet101": (Bottleneck, (3, 4, 23, 3), {}),
    "resnet152": (Bottleneck, (3, 8, 36, 3), {}),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), {"groups": 32, "width_per_group": 4}),
    "resnext101_32x8d": (Bottleneck, (3, 4, 23, 3), {"groups": 32, "width_per_group": 8}),
    "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), {"groups": 64, "width_per_group": 4}),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3), {"width_per_group": 128}),
    "wide_resnet101_2": (Bottleneck, (3, 4, 23, 3), {"width_per_group": 128}),
}

# Variants from "Bag of Tricks" (He et al. 2019) and SENets, laid out as timm's models of the
# same names (identical state_dict keys), so their weights load as they are.
_C = {"stem_type": "deep", "stem_width": 32}
_D = {"stem_type": "deep", "stem_width": 32, "avg_down": True}
VARIANTS: Dict[str, Spec] = {
    "resnet18d": (BasicBlock, (2, 2, 2, 2), _D),
    "resnet34d": (BasicBlock, (3, 4, 6, 3), _D),
    "resnet50c": (Bottleneck, (3, 4, 6, 3), _C),
    "resnet50d": (Bottleneck, (3, 4, 6, 3), _D),
    "resnet101d": (Bottleneck, (3, 4, 23, 3), _D),
    "seresnet50": (Bottleneck, (3, 4, 6, 3), {"se": True}),
    "seresnext50_32x4d": (Bottleneck, (3, 4, 6, 3), {"groups": 32, "width_per_group": 4, "se": True}),
}
# CIFAR ResNets (He et al. 2015, Table 6): name -> blocks per stage n (depth 6n + 2).
CIFAR_DEPTHS: Dict[str, int] = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}

CIFAR_OPTIONS = ("num_classes", "in_chans", "norm_layer", "zero_init_residual")


def make_resnet(name: str, **options: Any) -> ResNet:
    """Construct the ImageNet-style architecture ``name``; ``options`` are ``ResNet`` keyword arguments."""
    block, layers, fixed = ARCHITECTURES[name] if name in ARCHITECTURES else VARIANTS[name]
    clash = sorted(set(fixed) & set(options))
    if clash:
        raise InvalidOption(
            f"{name} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)}; build rk.ResNet(...) directly "
            "for another value"
        )
    return ResNet(block, list(layers), **fixed, **options)


def make_cifar_resnet(name: str, **options: Any) -> CifarResNet:
    """Construct the CIFAR ResNet ``name``; it takes num_classes, in_chans and norm_layer only."""
    unsupported = sorted(set(options) - set(CIFAR_OPTIONS))
    if unsupported:
        raise InvalidOption(
            f"{name} is a CIFAR ResNet (3x3 stem, 3 stages, option-A shortcuts): it does not take "
            f"{', '.join(unsupported)}; it accepts {', '.join(CIFAR_OPTIONS)}"
        )
    return CifarResNet(CIFAR_DEPTHS[name], **options)


for _name in (*ARCHITECTURES, *VARIANTS):
    register_model(_name, partial(make_resnet, _name))
for _name in CIFAR_DEPTHS:
    register_model(_name, partial(make_cifar_resnet, _name))
