"""The ResNet network: stem, four stages of residual blocks, pooled linear head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Type, Union

import torch
from torch import Tensor, nn

from ..errors import InvalidOption
from .attention import ANTI_ALIAS, ATTENTION
from .base import FeatureInfo, ResNetBase, check_input, check_num_classes, is_int
from .blocks import BasicBlock, Bottleneck, NormLayer, conv1x1, last_norm
from .layers import avg_down_pool
from .stems import build_stem

# torch.fx patches wrapped functions per calling module: record the check as one call here too.
torch.fx.wrap("check_input")

Block = Type[Union[BasicBlock, Bottleneck]]

STAGE_WIDTHS = (64, 128, 256, 512)


def _block_options(
    se: bool, attn_layer: Optional[str], attn_rd_ratio: float, aa_layer: Optional[str], reduce_first: int
) -> Dict[str, Any]:
    """The options every block gets; only those that differ from the blocks' defaults, so a plain
    ResNet calls torchvision's block signature alone."""
    if attn_layer not in ATTENTION + (None,):
        raise InvalidOption(
            f"attn_layer {attn_layer!r} is not one of {', '.join(ATTENTION)} (or None)", field="attn_layer"
        )
    if aa_layer not in ANTI_ALIAS + (None,):
        raise InvalidOption(f"aa_layer {aa_layer!r} is not one of {', '.join(ANTI_ALIAS)} (or None)", field="aa_layer")
    if not is_int(reduce_first) or reduce_first < 1:
        raise InvalidOption(
            f"block_reduce_first must be an integer >= 1, got {reduce_first!r}", field="block_reduce_first"
        )
    if not 0 < attn_rd_ratio <= 1:
        raise InvalidOption(f"attn_rd_ratio must be in (0, 1], got {attn_rd_ratio!r}", field="attn_rd_ratio")
    options: Dict[str, Any] = {}
    if se or attn_layer:
        options["attn_layer"] = attn_layer or "se"
        if attn_rd_ratio != 1.0 / 16:
            options["attn_rd_ratio"] = attn_rd_ratio
    if aa_layer:
        options["aa_layer"] = aa_layer
    if reduce_first != 1:
        options["reduce_first"] = reduce_first
    return options


def validate_io(num_classes: Any, in_chans: Any) -> None:
    """The checks every classifier in the family shares."""
    check_num_classes(num_classes)
    if not is_int(in_chans) or in_chans < 1:
        raise InvalidOption(f"in_chans must be an integer >= 1 (1 for grayscale, 3 for RGB, ...), got {in_chans!r}")


def init_weights(model: nn.Module) -> None:
    """He et al.'s initialisation, in torchvision's order: Kaiming-normal (fan_out, ReLU) for every
    conv, weight 1 / bias 0 for BatchNorm and GroupNorm; linear layers keep their default init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _validate(
    block: Any,
    layers: Any,
    num_classes: Any,
    groups: Any,
    width_per_group: Any,
    replace_stride_with_dilation: Any,
    norm_layer: Any,
    in_chans: Any,
) -> List[bool]:
    if not (isinstance(block, type) and issubclass(block, nn.Module) and hasattr(block, "expansion")):
        raise InvalidOption(f"block must be BasicBlock, Bottleneck or a subclass with an 'expansion', got {block!r}")
    if (
        isinstance(layers, (str, bytes))
        or not isinstance(layers, Sequence)
        or len(layers) != 4
        or not all(is_int(n) and n > 0 for n in layers)
    ):
        raise InvalidOption(f"layers must be 4 positive integers (blocks per stage, e.g. [3, 4, 6, 3]), got {layers!r}")
    validate_io(num_classes, in_chans)
    if not is_int(groups) or groups < 1:
        raise InvalidOption(f"groups must be an integer >= 1, got {groups!r}")
    if not is_int(width_per_group) or width_per_group < 1:
        raise InvalidOption(f"width_per_group must be an integer >= 1, got {width_per_group!r}")
    if issubclass(block, BasicBlock) and (groups != 1 or width_per_group != 64):
        raise InvalidOption(
            f"BasicBlock only supports groups=1 and width_per_group=64 (got groups={groups}, "
            f"width_per_group={width_per_group}): a BasicBlock has no inner bottleneck width to group or "
            "widen. Use Bottleneck (e.g. resnext50_32x4d, wide_resnet50_2) for those options."
        )
    if replace_stride_with_dilation is None:
        dilate = [False, False, False]
    else:
        if (
            isinstance(replace_stride_with_dilation, (str, bytes))
            or not isinstance(replace_stride_with_dilation, Sequence)
            or len(replace_stride_with_dilation) != 3
            or not all(isinstance(v, bool) for v in replace_stride_with_dilation)
        ):
            raise InvalidOption(
                "replace_stride_with_dilation must be None or 3 booleans (for stages 2, 3, 4, e.g. "
                f"[False, True, True]), got {replace_stride_with_dilation!r}"
            )
        dilate = list(replace_stride_with_dilation)
    if norm_layer is not None and not callable(norm_layer):
        raise InvalidOption(
            f"norm_layer must be a callable taking a channel count (e.g. nn.BatchNorm2d), got {norm_layer!r}"
        )
    return dilate


def _validate_variant(
    block: Any, stem_width: Any, drop_path_rate: Any, stride_in_1x1: Any, channels: Any, down_kernel_size: Any
) -> None:
    if not is_int(stem_width) or stem_width < 1:
        raise InvalidOption(f"stem_width must be an integer >= 1, got {stem_width!r}", field="stem_width")
    if not 0.0 <= drop_path_rate < 1.0:
        raise InvalidOption(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}", field="drop_path_rate")
    if stride_in_1x1 and not all(issubclass(b, Bottleneck) for b in block):
        raise InvalidOption("stride_in_1x1 (ResNet v1) applies to Bottleneck blocks only", field="stride_in_1x1")
    if len(channels) != 4 or not all(is_int(c) and c > 0 for c in channels):
        raise InvalidOption(f"channels must be 4 positive stage widths, got {channels!r}", field="channels")
    if down_kernel_size not in (1, 3):
        raise InvalidOption(f"down_kernel_size must be 1 or 3, got {down_kernel_size!r}", field="down_kernel_size")


def _stage_blocks(block: Any) -> List[Block]:
    """One block class per stage: the same for all four, or a sequence of four (timm's test_resnet)."""
    blocks = list(block) if isinstance(block, (list, tuple)) else [block] * 4
    if len(blocks) != 4:
        raise InvalidOption(f"block must be one block class or four (one per stage), got {block!r}", field="block")
    return blocks


class ResNet(ResNetBase):
    """ResNet / ResNeXt / wide ResNet, module for module the same as torchvision's; and, with the
    options below, every ResNet of timm's ``resnet.py`` (the same module names, keys and order).

    Args:
        block: ``BasicBlock`` or ``Bottleneck`` (or four of them, one per stage).
        layers: number of blocks in each of the four stages.
        num_classes: classifier outputs; 0 gives an identity head returning pooled features.
        zero_init_residual: zero the last norm weight of every block, so each block starts as identity.
        groups: ResNeXt cardinality (Bottleneck only).
        width_per_group: per-group width of the bottleneck (64 plain, 128 for a wide ResNet-2).
        replace_stride_with_dilation: three booleans, one per stage 2-4: keep that stage's resolution and
            dilate its convolutions instead of striding (works for BasicBlock too).
        norm_layer: callable taking a channel count; defaults to ``nn.BatchNorm2d``.
        in_chans: input image channels.
        stem_type: ``""`` (the 7x7 stem), ``"deep"`` (ResNet-C: three 3x3), ``"deep_tiered"``
            (three 3x3, narrower first) or ``"small"`` (CIFAR-sized: one 3x3, no max-pool); see stems.py.
        stem_width: the width of a deep stem's first convolutions.
        avg_down: ResNet-D: the downsample shortcut average-pools, then projects at stride 1.
        se: squeeze-and-excitation in every block (same as ``attn_layer="se"``).
        drop_path_rate: stochastic depth, rising linearly per block to this rate.
        stride_in_1x1: the original ResNet v1 (stride on a bottleneck's first 1x1 instead of its 3x3),
            as Hugging Face's ``downsample_in_bottleneck=True``.
        attn_layer: channel attention in every block: "se" or "eca".
        attn_rd_ratio: the squeeze-and-excitation's reduction (1/16; ResNet-RS 1/4).
        aa_layer: anti-aliased downsampling, "avg" (ResNet-AA) or "blur" (BlurPool), in the stem and
            in every strided block.
        replace_stem_pool: ResNet-RS: a strided 3x3 convolution with norm and ReLU instead of the stem's
            max-pool.
        block_reduce_first: the first convolution of every block is this many times narrower (SENet-154: 2).
        down_kernel_size: the projection shortcut's kernel (1; SENet-154: 3).
        channels: the four stages' base widths (default 64, 128, 256, 512).

    Examples:
        >>> import torch
        >>> from resnetkit import ResNet, Bottleneck
        >>> model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10)  # resnet50's layout
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    if TYPE_CHECKING:
        layer1: nn.Sequential
        layer2: nn.Sequential
        layer3: nn.Sequential
        layer4: nn.Sequential

    def __init__(
        self,
        block: Union[Block, Sequence[Block]],
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Optional[Sequence[bool]] = None,
        norm_layer: Optional[NormLayer] = None,
        in_chans: int = 3,
        stem_type: str = "",
        stem_width: int = 32,
        avg_down: bool = False,
        se: bool = False,
        drop_path_rate: float = 0.0,
        stride_in_1x1: bool = False,
        attn_layer: Optional[str] = None,
        attn_rd_ratio: float = 1.0 / 16,
        aa_layer: Optional[str] = None,
        replace_stem_pool: bool = False,
        block_reduce_first: int = 1,
        down_kernel_size: int = 1,
        channels: Sequence[int] = STAGE_WIDTHS,
    ) -> None:
        super().__init__()
        blocks = _stage_blocks(block)
        dilate = [False, False, False]
        for stage_block in dict.fromkeys(blocks):
            dilate = _validate(
                stage_block, layers, num_classes, groups, width_per_group, replace_stride_with_dilation, norm_layer,
                in_chans,
            )  # fmt: skip
        _validate_variant(blocks, stem_width, drop_path_rate, stride_in_1x1, channels, down_kernel_size)
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.avg_down, self.se = bool(avg_down), bool(se)
        self.stride_in_1x1 = bool(stride_in_1x1)
        self.stem_type = stem_type
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.in_chans = int(in_chans)
        self._block_options = _block_options(se, attn_layer, attn_rd_ratio, aa_layer, block_reduce_first)
        self._down_kernel_size = int(down_kernel_size)
        # Modules are made in torchvision's order (stem, stages, head): it is the order in which they
        # draw from the RNG, part of the drop-in contract.
        stem = build_stem(self.in_chans, stem_type, stem_width, norm_layer, replace_stem_pool, aa_layer)
        self.conv1, self.bn1, self.relu, self.maxpool = stem.conv1, stem.bn1, stem.relu, stem.maxpool
        self.inplanes, self.stem_reduction = stem.channels, stem.reduction
        self._block_index, self._num_blocks, self._drop_path_rate = 0, sum(int(n) for n in layers), drop_path_rate
        self._make_stages(blocks, layers, dilate, list(channels), stem.pool_reduction)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = int(channels[-1]) * blocks[-1].expansion
        self.num_classes = int(num_classes)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                norm = last_norm(m)
                weight = getattr(norm, "weight", None)
                if isinstance(weight, torch.Tensor):
                    nn.init.constant_(weight, 0)

    def _make_stages(
        self, blocks: List[Block], layers: Sequence[int], dilate: List[bool], widths: List[int], reduction: int
    ) -> None:
        self.feature_info = FeatureInfo(
            [{"num_chs": self.inplanes, "reduction": self.stem_reduction, "module": "relu", "index": 0}]
        )
        names = []
        stages = zip(blocks, widths, layers, [1, 2, 2, 2], [False, *dilate])
        for index, (block, width, depth, stride, dil) in enumerate(stages):
            name = f"layer{index + 1}"
            names.append(name)
            setattr(self, name, self._make_layer(block, width, int(depth), stride=stride, dilate=dil))
            if not dil:
                reduction *= stride
            self.feature_info.append(
                {"num_chs": width * block.expansion, "reduction": reduction, "module": name, "index": index + 1}
            )
        self.stage_names = tuple(names)

    def _make_downsample(self, planes: int, stride: int, previous_dilation: int) -> nn.Module:
        """The projection shortcut: a 1x1 (SENet-154: 3x3) strided convolution and a norm, or
        (ResNet-D, ``avg_down``) an average pool then a stride-1 1x1 convolution and a norm."""
        norm_layer, out = self._norm_layer, planes
        if self.avg_down:
            # ResNet-D: average-pool first, then a stride-1 projection, so no input is skipped.
            return nn.Sequential(avg_down_pool(stride, self.dilation), conv1x1(self.inplanes, out), norm_layer(out))
        kernel = 1 if stride == 1 and self.dilation == 1 else self._down_kernel_size
        if kernel == 1:
            return nn.Sequential(conv1x1(self.inplanes, out, stride), norm_layer(out))
        dilation = previous_dilation
        padding = ((stride - 1) + dilation * (kernel - 1)) // 2
        conv = nn.Conv2d(self.inplanes, out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)
        return nn.Sequential(conv, norm_layer(out))

    def _make_layer(
        self, block: Block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        # The projection shortcut is needed exactly when the residual cannot be added as is:
        # the block changes resolution or channel count.
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = self._make_downsample(planes * block.expansion, stride, previous_dilation)

        first_options = self._variant_options()
        first_dilation = previous_dilation
        if previous_dilation != self.dilation:
            # The first block of a dilated stage keeps the previous dilation where its stride would
            # be (timm's convention; torchvision's for Bottleneck, which it alone dilates).
            first_options["first_dilation"] = previous_dilation
            first_dilation = self.dilation
        layers = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                self.groups,
                self.base_width,
                first_dilation,
                norm_layer,
                **first_options,
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                    **self._variant_options(),
                )
            )
        return nn.Sequential(*layers)

    def _variant_options(self) -> Dict[str, Any]:
        """The block options of the next block (stochastic depth rising linearly with depth); empty
        for a plain ResNet, so torchvision's block signature is all that is used."""
        options: Dict[str, Any] = dict(self._block_options)
        if self.stride_in_1x1:
            options["stride_in_1x1"] = True
        if self._drop_path_rate > 0:
            options["drop_path"] = self._drop_path_rate * self._block_index / max(1, self._num_blocks - 1)
        self._block_index += 1
        return options

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the four stages: the last feature map, (N, num_features, H/32, W/32) without dilation."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self._run_stages(self.maxpool(self.forward_stem(x)))
        # Spelled out (not a loop over names) so that TorchScript can compile it.
        x = check_input(x, self.in_chans)
        if not torch.jit.is_scripting():
            self.check_dtype(x)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x
