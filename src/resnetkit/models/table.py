"""The architectures, as one table of data: a name, its family, the class that builds it and the
options that define it - torchvision's ten builders, every ResNet of timm's ``resnet.py`` and
``resnetv2.py`` (timm's layouts, keys and defaults, read from timm's own model definitions), and
the CIFAR ResNets of the paper. Adding a variant is one row.

Plain data (names, numbers, strings): importing it needs no torch, so ``resnetkit models`` and the
CLI's choices answer at once; ``builders.py`` maps the names to the classes and builds.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

B, N = "BasicBlock", "Bottleneck"


@dataclass(frozen=True)
class Arch:
    """One architecture: ``cls(**fixed, **defaults)`` builds it. ``fixed`` options are what make the
    name mean what it says (a user may not override them); ``defaults`` a user may (timm's networks
    zero the last norm of every block unless told otherwise; torchvision's do not)."""

    family: str
    cls: str  # "ResNet", "ResNetV2" or "CifarResNet" (models/builders.py maps the names to the classes)
    fixed: Dict[str, Any]
    defaults: Dict[str, Any] = field(default_factory=dict)
    channel_map: Optional[str] = None  # a pruned network's layer widths (models/data/NAME.json)

    @property
    def block(self) -> str:
        """The block's name (of the first stage, where they differ)."""
        block = self.fixed.get("block")
        if isinstance(block, (list, tuple)):
            return block[0]
        if block:
            return block
        if self.cls == "ResNetV2":
            return "PreActBasic" if self.fixed.get("basic") else "PreActBottleneck"
        return "BasicBlock"

    @property
    def layers(self) -> Tuple[int, ...]:
        """Blocks per stage."""
        if self.cls == "CifarResNet":
            return (self.fixed["n"],) * 3
        return tuple(self.fixed["layers"])


TV = "torchvision"
TIMM_INIT = {"zero_init_residual": True}  # timm's zero_init_last=True

# Stems and shortcuts of "Bag of Tricks" (He et al. 2019) and timm: C: deep stem (32, 32, 64); D: C
# plus average-pool shortcuts; S: a deep stem of 64 (64, 64, 128); T: a tiered deep stem (24, 32, 64)
# with average-pool shortcuts.
C = {"stem_type": "deep", "stem_width": 32}
D = {"stem_type": "deep", "stem_width": 32, "avg_down": True}
S = {"stem_type": "deep", "stem_width": 64}
T = {"stem_type": "deep_tiered", "stem_width": 32, "avg_down": True}
SE, ECA = {"attn_layer": "se"}, {"attn_layer": "eca"}
AA, BLUR = {"aa_layer": "avg"}, {"aa_layer": "blur"}
RS = {"stem_type": "deep", "stem_width": 32, "replace_stem_pool": True, "avg_down": True, "attn_layer": "se",
      "attn_rd_ratio": 0.25}  # fmt: skip
X32x4, X32x8, X64x4 = ({"groups": g, "width_per_group": w} for g, w in ((32, 4), (32, 8), (64, 4)))


def v1(family: str, block: Any, layers: Tuple[int, ...], *options: Dict[str, Any], **extra: Any) -> Arch:
    fixed: Dict[str, Any] = {"block": block, "layers": layers}
    for o in options:
        fixed.update(o)
    fixed.update(extra)
    pruned = fixed.pop("channel_map", None)
    return Arch(family, "ResNet", fixed, dict(TIMM_INIT) if family != TV else {}, pruned)


def v2(family: str, layers: Tuple[int, ...], **fixed: Any) -> Arch:
    return Arch(family, "ResNetV2", {"layers": layers, **fixed})


BASIC_V2 = {"channels": (64, 128, 256, 512), "basic": True}
PLAIN_V2 = {"norm": "batch", "std_conv": False}
D_V2 = {"stem_type": "deep", "avg_down": True}
BIT = {"stem_type": "fixed", "norm": "group", "std_conv": True}

ARCHITECTURES: Dict[str, Arch] = {
    # torchvision's ten builders: module for module torchvision.models (the drop-in contract)
    "resnet18": v1(TV, B, (2, 2, 2, 2)),
    "resnet34": v1(TV, B, (3, 4, 6, 3)),
    "resnet50": v1(TV, N, (3, 4, 6, 3)),
    "resnet101": v1(TV, N, (3, 4, 23, 3)),
    "resnet152": v1(TV, N, (3, 8, 36, 3)),
    "resnext50_32x4d": v1(TV, N, (3, 4, 6, 3), X32x4),
    "resnext101_32x8d": v1(TV, N, (3, 4, 23, 3), X32x8),
    "resnext101_64x4d": v1(TV, N, (3, 4, 23, 3), X64x4),
    "wide_resnet50_2": v1(TV, N, (3, 4, 6, 3), width_per_group=128),
    "wide_resnet101_2": v1(TV, N, (3, 4, 23, 3), width_per_group=128),
    # ResNet-B/C/D/S/T: the same blocks, other stems and shortcuts (timm's resnet.py)
    "resnet10t": v1("ResNet-C/D/S/T", B, (1, 1, 1, 1), T),
    "resnet14t": v1("ResNet-C/D/S/T", N, (1, 1, 1, 1), T),
    "resnet18d": v1("ResNet-C/D/S/T", B, (2, 2, 2, 2), D),
    "resnet26": v1("ResNet-C/D/S/T", N, (2, 2, 2, 2)),
    "resnet26d": v1("ResNet-C/D/S/T", N, (2, 2, 2, 2), D),
    "resnet26t": v1("ResNet-C/D/S/T", N, (2, 2, 2, 2), T),
    "resnet34d": v1("ResNet-C/D/S/T", B, (3, 4, 6, 3), D),
    "resnet50c": v1("ResNet-C/D/S/T", N, (3, 4, 6, 3), C),
    "resnet50d": v1("ResNet-C/D/S/T", N, (3, 4, 6, 3), D),
    "resnet50s": v1("ResNet-C/D/S/T", N, (3, 4, 6, 3), S),
    "resnet50t": v1("ResNet-C/D/S/T", N, (3, 4, 6, 3), T),
    "resnet101c": v1("ResNet-C/D/S/T", N, (3, 4, 23, 3), C),
    "resnet101d": v1("ResNet-C/D/S/T", N, (3, 4, 23, 3), D),
    "resnet101s": v1("ResNet-C/D/S/T", N, (3, 4, 23, 3), S),
    "resnet152c": v1("ResNet-C/D/S/T", N, (3, 8, 36, 3), C),
    "resnet152d": v1("ResNet-C/D/S/T", N, (3, 8, 36, 3), D),
    "resnet152s": v1("ResNet-C/D/S/T", N, (3, 8, 36, 3), S),
    "resnet200": v1("ResNet-C/D/S/T", N, (3, 24, 36, 3)),
    "resnet200d": v1("ResNet-C/D/S/T", N, (3, 24, 36, 3), D),
    "test_resnet": v1("ResNet-C/D/S/T", (B, B, N, B), (1, 1, 1, 1), D, stem_width=16, channels=(32, 48, 48, 96)),
    # ResNeXt and GroupNorm
    "resnext50d_32x4d": v1("ResNeXt", N, (3, 4, 6, 3), X32x4, D),
    "resnext101_32x4d": v1("ResNeXt", N, (3, 4, 23, 3), X32x4),
    "resnext101_32x16d": v1("ResNeXt", N, (3, 4, 23, 3), groups=32, width_per_group=16),
    "resnext101_32x32d": v1("ResNeXt", N, (3, 4, 23, 3), groups=32, width_per_group=32),
    "resnet50_gn": v1("GroupNorm", N, (3, 4, 6, 3), norm_layer="group"),
    # Squeeze-and-excitation (Hu et al. 2018)
    "seresnet18": v1("SE", B, (2, 2, 2, 2), SE),
    "seresnet34": v1("SE", B, (3, 4, 6, 3), SE),
    "seresnet50": v1("SE", N, (3, 4, 6, 3), SE),
    "seresnet50t": v1("SE", N, (3, 4, 6, 3), T, SE),
    "seresnet101": v1("SE", N, (3, 4, 23, 3), SE),
    "seresnet152": v1("SE", N, (3, 8, 36, 3), SE),
    "seresnet152d": v1("SE", N, (3, 8, 36, 3), D, SE),
    "seresnet200d": v1("SE", N, (3, 24, 36, 3), D, SE),
    "seresnet269d": v1("SE", N, (3, 30, 48, 8), D, SE),
    "seresnext26d_32x4d": v1("SE", N, (2, 2, 2, 2), X32x4, D, SE),
    "seresnext26t_32x4d": v1("SE", N, (2, 2, 2, 2), X32x4, T, SE),
    "seresnext50_32x4d": v1("SE", N, (3, 4, 6, 3), X32x4, SE),
    "seresnext101_32x4d": v1("SE", N, (3, 4, 23, 3), X32x4, SE),
    "seresnext101_32x8d": v1("SE", N, (3, 4, 23, 3), X32x8, SE),
    "seresnext101d_32x8d": v1("SE", N, (3, 4, 23, 3), X32x8, D, SE),
    "seresnext101_64x4d": v1("SE", N, (3, 4, 23, 3), X64x4, SE),
    # SENet-154: a 64-wide deep stem, 3x3 projection shortcuts, the first 1x1 of each block halved
    "senet154": v1(
        "SE", N, (3, 8, 36, 3), X64x4, SE, stem_type="deep", stem_width=64, down_kernel_size=3, block_reduce_first=2
    ),  # fmt: skip
    # Efficient channel attention (Wang et al. 2020); two pruned by Knapsack pruning (Aflalo et al. 2020)
    "ecaresnet26t": v1("ECA", N, (2, 2, 2, 2), T, ECA),
    "ecaresnet50d": v1("ECA", N, (3, 4, 6, 3), D, ECA),
    "ecaresnet50d_pruned": v1("ECA", N, (3, 4, 6, 3), D, ECA, channel_map="ecaresnet50d_pruned"),
    "ecaresnet50t": v1("ECA", N, (3, 4, 6, 3), T, ECA),
    "ecaresnetlight": v1("ECA", N, (1, 1, 11, 3), ECA, stem_width=32, avg_down=True),
    "ecaresnet101d": v1("ECA", N, (3, 4, 23, 3), D, ECA),
    "ecaresnet101d_pruned": v1("ECA", N, (3, 4, 23, 3), D, ECA, channel_map="ecaresnet101d_pruned"),
    "ecaresnet200d": v1("ECA", N, (3, 24, 36, 3), D, ECA),
    "ecaresnet269d": v1("ECA", N, (3, 30, 48, 8), D, ECA),
    "ecaresnext26t_32x4d": v1("ECA", N, (2, 2, 2, 2), X32x4, T, ECA),
    "ecaresnext50t_32x4d": v1("ECA", N, (3, 4, 6, 3), X32x4, T, ECA),
    # Anti-aliased downsampling (Zhang 2019): BlurPool, or timm's 2x2 average (ResNet-AA)
    "resnetblur18": v1("Anti-aliased", B, (2, 2, 2, 2), BLUR),
    "resnetblur50": v1("Anti-aliased", N, (3, 4, 6, 3), BLUR),
    "resnetblur50d": v1("Anti-aliased", N, (3, 4, 6, 3), D, BLUR),
    "resnetblur101d": v1("Anti-aliased", N, (3, 4, 23, 3), D, BLUR),
    "resnetaa34d": v1("Anti-aliased", B, (3, 4, 6, 3), D, AA),
    "resnetaa50": v1("Anti-aliased", N, (3, 4, 6, 3), AA),
    "resnetaa50d": v1("Anti-aliased", N, (3, 4, 6, 3), D, AA),
    "resnetaa101d": v1("Anti-aliased", N, (3, 4, 23, 3), D, AA),
    "seresnetaa50d": v1("Anti-aliased", N, (3, 4, 6, 3), D, AA, SE),
    "seresnextaa101d_32x8d": v1("Anti-aliased", N, (3, 4, 23, 3), X32x8, D, AA, SE),
    "seresnextaa201d_32x8d": v1("Anti-aliased", N, (3, 24, 36, 4), X32x8, D, AA, SE, stem_width=64),
    # ResNet-RS (Bello et al. 2021): deep stem, strided conv for the stem's pool, SE at 1/4, ResNet-D shortcuts
    "resnetrs50": v1("ResNet-RS", N, (3, 4, 6, 3), RS),
    "resnetrs101": v1("ResNet-RS", N, (3, 4, 23, 3), RS),
    "resnetrs152": v1("ResNet-RS", N, (3, 8, 36, 3), RS),
    "resnetrs200": v1("ResNet-RS", N, (3, 24, 36, 3), RS),
    "resnetrs270": v1("ResNet-RS", N, (4, 29, 53, 4), RS),
    "resnetrs350": v1("ResNet-RS", N, (4, 36, 72, 4), RS),
    "resnetrs420": v1("ResNet-RS", N, (4, 44, 87, 4), RS),
    # ResNetV2: pre-activation (He et al. 2016), timm's resnetv2.py
    "resnetv2_18": v2("ResNetV2", (2, 2, 2, 2), **BASIC_V2, **PLAIN_V2),
    "resnetv2_18d": v2("ResNetV2", (2, 2, 2, 2), **BASIC_V2, **PLAIN_V2, **D_V2),
    "resnetv2_34": v2("ResNetV2", (3, 4, 6, 3), **BASIC_V2, **PLAIN_V2),
    "resnetv2_34d": v2("ResNetV2", (3, 4, 6, 3), **BASIC_V2, **PLAIN_V2, **D_V2),
    "resnetv2_50": v2("ResNetV2", (3, 4, 6, 3), **PLAIN_V2),
    "resnetv2_50d": v2("ResNetV2", (3, 4, 6, 3), **PLAIN_V2, **D_V2),
    "resnetv2_50t": v2("ResNetV2", (3, 4, 6, 3), **PLAIN_V2, stem_type="tiered", avg_down=True),
    "resnetv2_101": v2("ResNetV2", (3, 4, 23, 3), **PLAIN_V2),
    "resnetv2_101d": v2("ResNetV2", (3, 4, 23, 3), **PLAIN_V2, **D_V2),
    "resnetv2_152": v2("ResNetV2", (3, 8, 36, 3), **PLAIN_V2),
    "resnetv2_152d": v2("ResNetV2", (3, 8, 36, 3), **PLAIN_V2, **D_V2),
    "resnetv2_50d_gn": v2("ResNetV2", (3, 4, 6, 3), norm="group", std_conv=False, **D_V2),
    "resnetv2_50d_evos": v2("ResNetV2", (3, 4, 6, 3), norm="evonorm_s0", std_conv=False, **D_V2),
    "resnetv2_50d_frn": v2("ResNetV2", (3, 4, 6, 3), norm="frn", std_conv=False, **D_V2),
    # Big Transfer (Kolesnikov et al. 2020): weight-standardised convs, GroupNorm, x1..x4 wide
    "resnetv2_50x1_bit": v2("BiT", (3, 4, 6, 3), **BIT, width_factor=1),
    "resnetv2_50x3_bit": v2("BiT", (3, 4, 6, 3), **BIT, width_factor=3),
    "resnetv2_101x1_bit": v2("BiT", (3, 4, 23, 3), **BIT, width_factor=1),
    "resnetv2_101x3_bit": v2("BiT", (3, 4, 23, 3), **BIT, width_factor=3),
    "resnetv2_152x2_bit": v2("BiT", (3, 8, 36, 3), **BIT, width_factor=2),
    "resnetv2_152x4_bit": v2("BiT", (3, 8, 36, 3), **BIT, width_factor=4),
    # CIFAR ResNets (He et al. 2015, Table 6): n blocks per stage, depth 6n + 2
    "resnet20": Arch("CIFAR", "CifarResNet", {"n": 3}),
    "resnet32": Arch("CIFAR", "CifarResNet", {"n": 5}),
    "resnet44": Arch("CIFAR", "CifarResNet", {"n": 7}),
    "resnet56": Arch("CIFAR", "CifarResNet", {"n": 9}),
    "resnet110": Arch("CIFAR", "CifarResNet", {"n": 18}),
}

TORCHVISION_NAMES = tuple(n for n, a in ARCHITECTURES.items() if a.family == TV)
FAMILIES: List[str] = list(dict.fromkeys(a.family for a in ARCHITECTURES.values()))


def families() -> Dict[str, List[str]]:
    """The names of each family, in table order."""
    out: Dict[str, List[str]] = {f: [] for f in FAMILIES}
    for name, arch in ARCHITECTURES.items():
        out[arch.family].append(name)
    return out


def architecture_depths(name: str) -> Tuple[int, ...]:
    """Blocks per stage of a registered name (empty for a name outside the table)."""
    arch = ARCHITECTURES.get(name)
    return arch.layers if arch is not None else ()


def match(patterns: Union[None, str, Sequence[str]], names: Sequence[str]) -> List[str]:
    """The names matching any of the fnmatch ``patterns`` (all of them for None), in order."""
    if patterns is None:
        return list(names)
    wanted = [patterns] if isinstance(patterns, str) else list(patterns)
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in wanted)]
