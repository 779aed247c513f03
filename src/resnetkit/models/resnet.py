"""The ResNet network: stem, four stages of residual blocks, pooled linear head."""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import Tensor, nn

from .blocks import BasicBlock, Bottleneck, NormLayer, conv1x1, conv3x3, last_norm
from .layers import avg_down_pool

Block = Type[Union[BasicBlock, Bottleneck]]

STAGE_WIDTHS = (64, 128, 256, 512)
STEM_TYPES = ("", "deep", "small")


@torch.fx.wrap
def check_input(x: Tensor, in_chans: int) -> Tensor:
    """Reject inputs that are not (N, in_chans, H, W) with a message naming the expected shape.

    Wrapped for torch.fx so that symbolic tracing records the check as one call instead of
    failing on data-dependent control flow; scripting and compile see plain Python.
    """
    if x.dim() != 4:
        raise ValueError(
            f"ResNet expects a 4-D input (N, {in_chans}, H, W), got a {x.dim()}-D tensor of shape "
            f"{list(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"ResNet expects {in_chans} input channels (N, {in_chans}, H, W), got shape {list(x.shape)}; "
            f"build the model with in_chans={x.shape[1]} or convert the images to {in_chans} channels"
        )
    return x


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_io(num_classes: Any, in_chans: Any) -> None:
    """The checks every classifier in the family shares."""
    if not _is_int(num_classes) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0 gives a head without classifier), got {num_classes!r}")
    if not _is_int(in_chans) or in_chans < 1:
        raise ValueError(f"in_chans must be an integer >= 1 (1 for grayscale, 3 for RGB, ...), got {in_chans!r}")


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
        raise ValueError(f"block must be BasicBlock, Bottleneck or a subclass with an 'expansion', got {block!r}")
    if (
        isinstance(layers, (str, bytes))
        or not isinstance(layers, Sequence)
        or len(layers) != 4
        or not all(_is_int(n) and n > 0 for n in layers)
    ):
        raise ValueError(
            f"layers must be 4 positive integers (blocks per stage, e.g. [3, 4, 6, 3]), got {layers!r}"
        )
    validate_io(num_classes, in_chans)
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be an integer >= 1, got {groups!r}")
    if not _is_int(width_per_group) or width_per_group < 1:
        raise ValueError(f"width_per_group must be an integer >= 1, got {width_per_group!r}")
    if issubclass(block, BasicBlock) and (groups != 1 or width_per_group != 64):
        raise ValueError(
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
            raise ValueError(
                "replace_stride_with_dilation must be None or 3 booleans (for stages 2, 3, 4, e.g. "
                f"[False, True, True]), got {replace_stride_with_dilation!r}"
            )
        dilate = list(replace_stride_with_dilation)
    if norm_layer is not None and not callable(norm_layer):
        raise ValueError(
            f"norm_layer must be a callable taking a channel count (e.g. nn.BatchNorm2d), got {norm_layer!r}"
        )
    return dilate


class ResNet(nn.Module):
    """ResNet / ResNeXt / wide ResNet, module for module the same as torchvision's.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: number of blocks in each of the four stages.
        num_classes: classifier outputs; 0 gives an identity head returning pooled features.
        zero_init_residual: zero the last norm weight of every block, so each block starts as identity.
        groups, width_per_group: ResNeXt cardinality and per-group width (Bottleneck only).
        replace_stride_with_dilation: three booleans, one per stage 2-4: keep that stage's resolution and
            dilate its convolutions instead of striding (works for BasicBlock too).
        norm_layer: callable taking a channel count; defaults to ``nn.BatchNorm2d``.
        in_chans: input image channels.
    """

    def __init__(
        self,
        block: Block,
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
    ) -> None:
        super().__init__()
        dilate = _validate(
            block, layers, num_classes, groups, width_per_group, replace_stride_with_dilation, norm_layer, in_chans
        )
        if stem_type not in STEM_TYPES:
            raise ValueError(f"stem_type {stem_type!r} is not one of {', '.join(map(repr, STEM_TYPES))}")
        if not _is_int(stem_width) or stem_width < 1:
            raise ValueError(f"stem_width must be an integer >= 1, got {stem_width!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.avg_down, self.se = bool(avg_down), bool(se)
        self.stem_type = stem_type

        self.inplanes = 2 * stem_width if stem_type == "deep" else 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.in_chans = int(in_chans)
        if stem_type == "deep":
            # ResNet-C (He et al. 2019): three 3x3 convs replace the 7x7 (timm's layout and key names).
            self.conv1 = nn.Sequential(
                conv3x3(self.in_chans, stem_width, stride=2), norm_layer(stem_width), nn.ReLU(inplace=True),
                conv3x3(stem_width, stem_width), norm_layer(stem_width), nn.ReLU(inplace=True),
                conv3x3(stem_width, self.inplanes),
            )
        elif stem_type == "small":
            # Small inputs (CIFAR-sized): a 3x3 stride-1 stem and no max-pool keep the resolution.
            self.conv1 = conv3x3(self.in_chans, self.inplanes)
        else:
            self.conv1 = nn.Conv2d(self.in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = (
            nn.Identity() if stem_type == "small" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )
        self.stem_reduction = 1 if stem_type == "small" else 2

        self._block_index, self._num_blocks, self._drop_path_rate = 0, sum(int(n) for n in layers), drop_path_rate
        strides = [1, 2, 2, 2]
        stage_dilate = [False] + dilate
        self.feature_info = []
        reduction = self.stem_reduction * (1 if stem_type == "small" else 2)  # the max-pool halves again
        for index, (width, depth, stride, dil) in enumerate(zip(STAGE_WIDTHS, layers, strides, stage_dilate)):
            name = f"layer{index + 1}"
            setattr(self, name, self._make_layer(block, width, int(depth), stride=stride, dilate=dil))
            if not dil:
                reduction *= stride
            self.feature_info.append({"num_chs": width * block.expansion, "reduction": reduction, "module": name})

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.num_classes = int(num_classes)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

        init_weights(self)

        if zero_init_residual:
            for m in self.modules():
                norm = last_norm(m)
                if norm is not None and getattr(norm, "weight", None) is not None:
                    nn.init.constant_(norm.weight, 0)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        # The projection shortcut is needed exactly when the residual cannot be added as is:
        # the block changes resolution or channel count.
        if stride != 1 or self.inplanes != planes * block.expansion:
            if self.avg_down:
                # ResNet-D: average-pool first, then a stride-1 projection, so no input is skipped.
                downsample = nn.Sequential(
                    avg_down_pool(stride, self.dilation),
                    conv1x1(self.inplanes, planes * block.expansion),
                    norm_layer(planes * block.expansion),
                )
            else:
                downsample = nn.Sequential(
                    conv1x1(self.inplanes, planes * block.expansion, stride),
                    norm_layer(planes * block.expansion),
                )

        layers = [
            block(
                self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation, norm_layer,
                **self._variant_options(),
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
        """SE and stochastic depth for the next block (drop rate rising linearly with depth);
        empty for a plain ResNet, so torchvision's block signature is all that is used."""
        options: Dict[str, Any] = {}
        if self.se:
            options["se"] = True
        if self._drop_path_rate > 0:
            options["drop_path"] = self._drop_path_rate * self._block_index / max(1, self._num_blocks - 1)
        self._block_index += 1
        return options

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the four stages: the last feature map, (N, num_features, H/32, W/32) without dilation."""
        x = check_input(x, self.in_chans)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward_intermediates(self, x: Tensor, indices: Optional[List[int]] = None) -> Tuple[Tensor, List[Tensor]]:
        """One pass that also returns intermediate feature maps: index 0 is the stem (after its
        ReLU, before the max-pool), 1-4 are the stage outputs. Returns (last feature map, the
        selected maps); ``forward_head`` of the first gives the logits."""
        wanted = [0, 1, 2, 3, 4] if indices is None else indices
        feats: List[Tensor] = []
        x = check_input(x, self.in_chans)
        x = self.relu(self.bn1(self.conv1(x)))
        if 0 in wanted:
            feats.append(x)
        x = self.maxpool(x)
        for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = stage(x)
            if i in wanted:
                feats.append(x)
        return x, feats

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool and classifier; ``pre_logits=True`` returns the pooled features."""
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        if pre_logits:
            return x
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh ``num_classes``-way linear layer (0: identity, pooled features out)."""
        if not _is_int(num_classes) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        self.num_classes = int(num_classes)
        ref = self.conv1.weight
        self.fc = (
            nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else nn.Identity()
        )
