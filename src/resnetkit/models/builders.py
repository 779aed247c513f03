"""The ten torchvision builders, as plain architecture constructors (no weights).

Weight loading (``weights=``, ``pretrained=``) is layered on top by ``resnetkit.weights``; this
module only knows the architecture.
"""

from __future__ import annotations

from typing import Any

from .blocks import BasicBlock, Bottleneck
from .registry import register_model
from .cifar import CifarResNet
from .resnet import ResNet

# name -> (block, stage depths, fixed options). Users may not override the fixed options: they
# are what makes the name mean what it says.
ARCHITECTURES = {
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
VARIANTS = {
    "resnet18d": (BasicBlock, (2, 2, 2, 2), _D),
    "resnet34d": (BasicBlock, (3, 4, 6, 3), _D),
    "resnet50c": (Bottleneck, (3, 4, 6, 3), _C),
    "resnet50d": (Bottleneck, (3, 4, 6, 3), _D),
    "resnet101d": (Bottleneck, (3, 4, 23, 3), _D),
    "seresnet50": (Bottleneck, (3, 4, 6, 3), {"se": True}),
    "seresnext50_32x4d": (Bottleneck, (3, 4, 6, 3), {"groups": 32, "width_per_group": 4, "se": True}),
}
# CIFAR ResNets (He et al. 2015, Table 6): name -> blocks per stage n (depth 6n + 2).
CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


def build(name: str, **options: Any) -> ResNet:
    """Construct the named architecture; ``options`` are ``ResNet`` keyword arguments."""
    block, layers, fixed = ARCHITECTURES[name] if name in ARCHITECTURES else VARIANTS[name]
    clash = sorted(set(fixed) & set(options))
    if clash:
        raise ValueError(
            f"{name} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)}; build rk.ResNet(...) directly "
            "for another value"
        )
    return ResNet(block, list(layers), **fixed, **options)


@register_model
def resnet18(**options: Any) -> ResNet:
    """ResNet-18 (He et al. 2015): BasicBlock, [2, 2, 2, 2]."""
    return build("resnet18", **options)


@register_model
def resnet34(**options: Any) -> ResNet:
    """ResNet-34: BasicBlock, [3, 4, 6, 3]."""
    return build("resnet34", **options)


@register_model
def resnet50(**options: Any) -> ResNet:
    """ResNet-50 (v1.5, stride on the 3x3): Bottleneck, [3, 4, 6, 3]."""
    return build("resnet50", **options)


@register_model
def resnet101(**options: Any) -> ResNet:
    """ResNet-101: Bottleneck, [3, 4, 23, 3]."""
    return build("resnet101", **options)


@register_model
def resnet152(**options: Any) -> ResNet:
    """ResNet-152: Bottleneck, [3, 8, 36, 3]."""
    return build("resnet152", **options)


@register_model
def resnext50_32x4d(**options: Any) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2016): 32 groups of width 4, [3, 4, 6, 3]."""
    return build("resnext50_32x4d", **options)


@register_model
def resnext101_32x8d(**options: Any) -> ResNet:
    """ResNeXt-101 32x8d: 32 groups of width 8, [3, 4, 23, 3]."""
    return build("resnext101_32x8d", **options)


@register_model
def resnext101_64x4d(**options: Any) -> ResNet:
    """ResNeXt-101 64x4d: 64 groups of width 4, [3, 4, 23, 3]."""
    return build("resnext101_64x4d", **options)


@register_model
def wide_resnet50_2(**options: Any) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): bottleneck twice as wide, [3, 4, 6, 3]."""
    return build("wide_resnet50_2", **options)


@register_model
def wide_resnet101_2(**options: Any) -> ResNet:
    """Wide ResNet-101-2: bottleneck twice as wide, [3, 4, 23, 3]."""
    return build("wide_resnet101_2", **options)


def _variant_builder(name: str):
    def builder(**options: Any) -> ResNet:
        return build(name, **options)

    block, layers, fixed = VARIANTS[name]
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name}: {block.__name__}, {list(layers)}, {fixed} (timm-compatible keys)."
    return register_model(builder)


def _cifar_builder(name: str, n: int):
    def builder(**options: Any) -> CifarResNet:
        return CifarResNet(n, **options)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name}: CIFAR ResNet of depth {6 * n + 2} (He et al. 2015, Table 6), 10 classes by default."
    return register_model(builder)


for _name in VARIANTS:
    globals()[_name] = _variant_builder(_name)
for _name, _n in CIFAR_DEPTHS.items():
    globals()[_name] = _cifar_builder(_name, _n)
