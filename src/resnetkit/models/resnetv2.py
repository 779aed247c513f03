"""ResNetV2: the pre-activation ResNet (He et al. 2016) as timm's ``resnetv2.py`` lays it out - a
stem, four stages of pre-activation blocks, a final norm-act, a 1x1-convolution classifier - including
Big Transfer (BiT, Kolesnikov et al. 2020: weight-standardised convolutions, GroupNorm, "fixed" stem
padding, wider by a width factor) and the EvoNorm-S0 and FRN variants. A sibling of ``ResNet``: the
same interface (``ResNetBase``), its own modules (``stem``, ``stages``, ``norm``, ``head``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..errors import InvalidOption
from .base import FeatureInfo, ResNetBase, SelectAdaptivePool, check_input, check_num_classes, is_int
from .preact import NORM_ACTS, PreActBasic, PreActBottleneck, Projection, StdConv2d, conv2d

STEM_TYPES = ("", "fixed", "deep", "tiered")


def _divisible(value: float, divisor: int = 8) -> int:
    """timm's make_divisible (nearest multiple of 8, never more than 10 % below ``value``)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ClassifierHead(nn.Module):
    """Global pool, then a 1x1 convolution as the classifier (BiT's), then flatten."""

    def __init__(self, num_features: int, num_classes: int, pool_type: str = "avg") -> None:
        super().__init__()
        self.global_pool = SelectAdaptivePool(pool_type)
        width = num_features * self.global_pool.multiplier
        self.fc: nn.Module = nn.Conv2d(width, num_classes, 1, bias=True) if num_classes > 0 else nn.Identity()
        self.flatten = pool_type != ""

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        if pre_logits:
            return x.flatten(1) if self.flatten else x
        x = self.fc(x)
        return x.flatten(1) if self.flatten else x


class ResNetV2(ResNetBase):
    """A pre-activation ResNet (timm's ResNetV2 layout and keys).

    Args:
        layers: blocks per stage.
        channels: the stages' output widths before the width factor (256, 512, 1024, 2048; BasicBlock
            networks 64 .. 512).
        num_classes: classifier outputs (0: none, pooled features out).
        in_chans: input channels.
        width_factor: every width multiplied by this (BiT-M R50x3: 3).
        stem_type: ``""`` (7x7, symmetric padding, max-pool), ``"fixed"`` (BiT: the max-pool's padding as a
            separate zero pad), ``"deep"`` (three 3x3) or ``"tiered"`` (three 3x3, narrower first).
        avg_down: projection shortcuts average-pool, then project at stride 1.
        basic: two-3x3 blocks instead of bottlenecks (ResNetV2-18/34).
        norm: the norm-act of every block: "batch" (BatchNorm + ReLU), "group" (GroupNorm + ReLU),
            "evonorm_s0" or "frn".
        std_conv: weight-standardised convolutions (BiT), eps ``std_conv_eps``.
        drop_path_rate: stochastic depth, per stage (timm's rule for ResNetV2).
        zero_init_residual: zero the last convolution of every block.

    Examples:
        >>> import torch
        >>> from resnetkit.models import ResNetV2
        >>> ResNetV2([1, 1, 1, 1], num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    default_input_size = 224

    def __init__(
        self,
        layers: Sequence[int],
        channels: Sequence[int] = (256, 512, 1024, 2048),
        num_classes: int = 1000,
        in_chans: int = 3,
        width_factor: int = 1,
        stem_type: str = "",
        avg_down: bool = False,
        basic: bool = False,
        norm: str = "group",
        std_conv: bool = True,
        std_conv_eps: float = 1e-8,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = False,
        replace_stride_with_dilation: Optional[Sequence[bool]] = None,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        _check(layers, channels, num_classes, in_chans, width_factor, stem_type, norm, drop_path_rate)
        dilate = list(replace_stride_with_dilation or [False, False, False])
        self.in_chans, self.num_classes = int(in_chans), check_num_classes(num_classes)
        self.stem_type = stem_type

        def conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
            if std_conv:
                return StdConv2d(in_chs, out_chs, kernel, stride, dilation, eps=std_conv_eps)
            return conv2d(in_chs, out_chs, kernel, stride, dilation)

        norm_act = NORM_ACTS[norm]
        stem_chs = _divisible(64 * width_factor)
        self.stem = _stem(self.in_chans, stem_chs, stem_type, conv, norm_act)
        # the stem's feature (index 0) is its last convolution's output, before the stem's pooling
        self.stem_feature = [name for name, _ in self.stem.named_children()].index(self._stem_feature_name())
        self.feature_info = FeatureInfo(
            [{"num_chs": stem_chs, "reduction": 2, "module": f"stem.{self._stem_feature_name()}", "index": 0}]
        )
        block = PreActBasic if basic else PreActBottleneck
        self.stages = nn.Sequential()
        prev, reduction, dilation = stem_chs, 4, 1
        rates = _stage_drop_rates(drop_path_rate, layers)
        for index, (depth, width) in enumerate(zip(layers, channels)):
            out_chs, stride = _divisible(width * width_factor), 1 if index == 0 else 2
            if index > 0 and dilate[index - 1]:
                dilation, stride = dilation * stride, 1
            stage = _stage(block, prev, out_chs, stride, dilation, int(depth), avg_down, conv, norm_act, rates[index])
            self.stages.add_module(str(index), stage)
            prev, reduction = out_chs, reduction * stride
            self.feature_info.append(
                {"num_chs": prev, "reduction": reduction, "module": f"stages.{index}", "index": index + 1}
            )
        self.stage_names = tuple(f"stages.{i}" for i in range(len(self.stages)))
        self.num_features = prev
        self.norm: nn.Module = norm_act(prev)
        self.head = ClassifierHead(prev, self.num_classes, global_pool)
        self.flatten_head = global_pool != ""
        _init_weights(self, zero_init_residual)

    def _stem_feature_name(self) -> str:
        return "conv3" if self.stem_type in ("deep", "tiered") else "conv"

    # ---- the hooks ResNetBase's contract runs on ---------------------------------------------------

    def forward_stem(self, x: Tensor) -> Tensor:
        """The stem up to its last convolution (feature index 0; a pre-activation stem has no norm)."""
        x = check_input(x, self.in_chans)
        if not torch.jit.is_scripting():
            self.check_dtype(x)
        for i, layer in enumerate(self.stem):
            if i > self.stem_feature:
                break
            x = layer(x)
        return x

    def stem_pool(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.stem):
            if i > self.stem_feature:
                x = layer(x)
        return x

    def final_norm(self, x: Tensor) -> Tensor:
        return self.norm(x)

    def stem_modules(self) -> List[Tuple[str, nn.Module]]:
        return [(f"stem.{name}", m) for name, m in self.stem.named_children()]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global pool and the 1x1-convolution classifier; ``pre_logits=True`` returns the pooled features."""
        return self.head(x, pre_logits=pre_logits)

    def classify(self, features: Tensor) -> Tensor:
        fc = self.head.fc
        if isinstance(fc, nn.Conv2d):
            return fc(features[:, :, None, None]).flatten(1)
        return fc(features)

    @property
    def head_hidden_size(self) -> int:
        return self.num_features * self.head.global_pool.multiplier

    @property
    def classifier_name(self) -> str:
        return "head.fc"

    @property
    def first_conv(self) -> str:
        return f"stem.{'conv1' if self.stem_type in ('deep', 'tiered') else 'conv'}"

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A fresh ``num_classes``-way 1x1-convolution classifier (0: none); ``global_pool`` as timm's."""
        num_classes = check_num_classes(num_classes)
        pool = self.head.global_pool.pool_type if global_pool is None else global_pool
        if pool == "" and num_classes > 0:
            raise InvalidOption("global_pool='' (no pooling) needs num_classes=0: a linear head needs pooled input")
        head = ClassifierHead(self.num_features, num_classes, pool)
        ref = next(self.parameters(), None)
        if ref is not None and ref.is_floating_point():
            head = head.to(device=ref.device, dtype=ref.dtype)
        self.head, self.num_classes, self.flatten_head = head, num_classes, pool != ""
        self.card = self.card.but(num_classes=num_classes, classes=None)

    def truncate(self, last: int) -> Tuple[str, ...]:
        """Keep the stem and the first ``last`` stages (for a backbone); the names of what was dropped."""
        dropped = tuple(f"stages.{i}" for i in range(last, len(self.stages)))
        self.stages = nn.Sequential(OrderedDict(list(self.stages.named_children())[:last]))
        self.stage_names = self.stage_names[:last]
        if dropped:
            self.norm = nn.Identity()
            dropped += ("norm",)
        return dropped + ("head",)

    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """timm's parameter groups: the stem, then stages (coarse) or blocks, the final norm last."""
        if coarse:
            return {"stem": r"^stem", "blocks": r"^stages\.(\d+)"}
        return {"stem": r"^stem", "blocks": [(r"^stages\.(\d+)\.blocks\.(\d+)", None), (r"^norm", (99999,))]}


class ResNetV2Stage(nn.Module):
    """One stage: ``blocks``, the first of which may stride and project (timm's ResNetStage)."""

    def __init__(self, blocks: List[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


def _stage(block, in_chs, out_chs, stride, dilation, depth, avg_down, conv, norm, rates) -> ResNetV2Stage:
    # timm's convention: the first block of a stage dilated by 2 keeps dilation 1 on its strided conv.
    first_dilation = 1 if dilation in (1, 2) else 2
    blocks: List[nn.Module] = []
    prev = in_chs
    for i in range(depth):
        s = stride if i == 0 else 1
        needs = i == 0 and (block is PreActBottleneck or s != 1 or first_dilation != dilation or prev != out_chs)
        projection = Projection(prev, out_chs, s, dilation, avg_down, conv) if needs else None
        blocks.append(block(prev, out_chs, s, dilation, first_dilation, projection, conv, norm, rates[i]))
        prev, first_dilation = out_chs, dilation
    return ResNetV2Stage(blocks)


def _stem(in_chans: int, out_chs: int, stem_type: str, conv, norm) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if stem_type in ("deep", "tiered"):
        first, second = (3 * out_chs // 8, out_chs // 2) if stem_type == "tiered" else (out_chs // 2, out_chs // 2)
        # Three 3x3 convolutions, norm-act between them; none after the last (the first block's
        # pre-activation normalises it).
        layers["conv1"] = conv(in_chans, first, 3, stride=2)
        layers["norm1"] = norm(first)
        layers["conv2"] = conv(first, second, 3)
        layers["norm2"] = norm(second)
        layers["conv3"] = conv(second, out_chs, 3)
    else:
        layers["conv"] = conv(in_chans, out_chs, 7, stride=2)
    if stem_type == "fixed":  # BiT: 'SAME' padding approximated by a zero pad, then an unpadded max-pool
        layers["pad"] = nn.ConstantPad2d(1, 0.0)
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=0)
    else:
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return nn.Sequential(layers)


def _stage_drop_rates(rate: float, layers: Sequence[int]) -> List[List[float]]:
    """timm's stagewise rule: one rate per stage, rising linearly from 0 to ``rate``."""
    n = len(layers)
    return [[rate * i / max(1, n - 1)] * int(d) for i, d in enumerate(layers)]


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """timm's ResNetV2 initialisation: Kaiming-normal (fan_out) convolutions, the classifier N(0, 0.01)
    with zero bias, norms 1/0; optionally the last convolution of every block zeroed."""
    for name, m in model.named_modules():
        if name == "head.fc" and isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif zero_init_residual and isinstance(m, (PreActBottleneck, PreActBasic)):
            nn.init.zeros_((m.conv3 if isinstance(m, PreActBottleneck) else m.conv2).weight)


def _check(layers, channels, num_classes, in_chans, width_factor, stem_type, norm, drop_path_rate) -> None:
    if (
        isinstance(layers, (str, bytes))
        or not isinstance(layers, Sequence)
        or not all(is_int(n) and n > 0 for n in layers)
    ):
        raise InvalidOption(f"layers must be positive integers (blocks per stage), got {layers!r}", field="layers")
    if len(channels) != len(layers):
        raise InvalidOption(
            f"channels must give one width per stage ({len(layers)}), got {channels!r}", field="channels"
        )
    check_num_classes(num_classes)
    if not is_int(in_chans) or in_chans < 1:
        raise InvalidOption(f"in_chans must be an integer >= 1, got {in_chans!r}", field="in_chans")
    if not is_int(width_factor) or width_factor < 1:
        raise InvalidOption(f"width_factor must be an integer >= 1, got {width_factor!r}", field="width_factor")
    if stem_type not in STEM_TYPES:
        raise InvalidOption(
            f"stem_type {stem_type!r} is not one of {', '.join(map(repr, STEM_TYPES))}", field="stem_type"
        )
    if norm not in NORM_ACTS:
        raise InvalidOption(f"norm {norm!r} is not one of {', '.join(NORM_ACTS)}", field="norm")
    if not 0.0 <= drop_path_rate < 1.0:
        raise InvalidOption(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}", field="drop_path_rate")
