"""Convolution helpers and the two residual blocks of the ResNet family.

Attribute names and construction order follow torchvision's ``models/resnet.py`` exactly, because
the state_dict keys and the order in which modules draw from the RNG are part of the drop-in
contract.
"""

from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor, nn

from ..errors import InvalidOption
from .attention import anti_alias, attention
from .layers import drop_path_layer

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias; padding equals the dilation so stride 1 keeps the spatial size.

    Args:
        in_planes: input channels.
        out_planes: output channels.
        stride: the stride (2 halves the size).
        groups: grouped convolution (ResNeXt's cardinality).
        dilation: spacing of the kernel taps (and the padding).

    Returns:
        The ``nn.Conv2d``, as torchvision's ``conv3x3`` builds it.

    Raises:
        ValueError: from ``nn.Conv2d``, for channels not divisible by ``groups``.

    Examples:
        >>> from resnetkit import conv3x3
        >>> conv3x3(64, 128, stride=2)
        Conv2d(64, 128, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
    """
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (channel projection, optionally strided).

    Args:
        in_planes: input channels.
        out_planes: output channels.
        stride: the stride (the downsample shortcut of a stage's first block uses 2).

    Returns:
        The ``nn.Conv2d``, as torchvision's ``conv1x1`` builds it.

    Raises:
        ValueError: from ``nn.Conv2d``, for a channel count that is not positive.

    Examples:
        >>> from resnetkit import conv1x1
        >>> conv1x1(256, 512, stride=2)
        Conv2d(256, 512, kernel_size=(1, 1), stride=(2, 2), bias=False)
    """
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (ResNet-18/34).

    Unlike torchvision, ``dilation > 1`` is supported, with timm's convention: conv1 uses
    ``first_dilation`` (in the first block of a dilated stage, the previous stage's dilation) and
    conv2 uses ``dilation``. That is what a segmentation backbone at output stride 8/16 needs.

    Args:
        inplanes: input channels.
        planes: output channels (``expansion`` is 1).
        stride: the stride of conv1 (2 in the first block of stages 2-4).
        downsample: the shortcut's projection (a 1x1 convolution + norm), or None for the identity.
        groups: grouped convolution (must be 1: a BasicBlock has no inner width).
        base_width: must be 64.
        norm_layer: the norm constructor (default ``nn.BatchNorm2d``).
        se: add a squeeze-and-excitation module after the last norm (SE-ResNet); same as
            ``attn_layer="se"``.
        drop_path: stochastic-depth rate of this block (0: none).
        dilation: the dilation of conv2.
        first_dilation: the dilation of conv1 (default: ``dilation``).
        attn_layer: channel attention after the last norm: "se" or "eca" (timm's ``attn_layer``).
        attn_rd_ratio: the squeeze-and-excitation's reduction (1/16; ResNet-RS 1/4).
        aa_layer: anti-aliased downsampling, "avg" or "blur": a strided conv1 runs at stride 1 and
            the subsampling follows its activation.
        reduce_first: conv1's output width is ``planes // reduce_first``.

    Examples:
        >>> import torch
        >>> from resnetkit import BasicBlock
        >>> BasicBlock(64, 64)(torch.randn(1, 64, 56, 56)).shape
        torch.Size([1, 64, 56, 56])
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = None,
        se: bool = False,
        drop_path: float = 0.0,
        first_dilation: Optional[int] = None,
        attn_layer: Optional[str] = None,
        attn_rd_ratio: float = 1.0 / 16,
        aa_layer: Optional[str] = None,
        reduce_first: int = 1,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise InvalidOption(
                f"BasicBlock only supports groups=1 and width_per_group=64 (got groups={groups}, "
                f"width_per_group={base_width}): a BasicBlock has no inner bottleneck width to group "
                "or widen. Use Bottleneck (e.g. resnext50_32x4d, wide_resnet50_2) for those options."
            )
        first_dilation = dilation if first_dilation is None else first_dilation
        if dilation < 1 or first_dilation < 1:
            raise InvalidOption(f"dilation must be >= 1, got {dilation} (first_dilation {first_dilation})")
        first_planes = planes // reduce_first
        use_aa = aa_layer is not None and (stride == 2 or first_dilation != dilation)
        self.conv1 = conv3x3(inplanes, first_planes, 1 if use_aa else stride, dilation=first_dilation)
        self.bn1 = norm_layer(first_planes)
        self.relu = nn.ReLU(inplace=True)
        # Variant options: absent by default, so torchvision's modules, keys and RNG order are
        # untouched; when present, in timm's order (the same keys, the same draws).
        if use_aa:
            self.aa = anti_alias(aa_layer, first_planes, stride)
        self.conv2 = conv3x3(first_planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.se = attention("se" if se else attn_layer, planes, attn_rd_ratio)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = drop_path_layer(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        if hasattr(self, "aa"):
            out = self.aa(out)

        out = self.conv2(out)
        out = self.bn2(out)
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped, dilated), 1x1 expand by 4, plus the shortcut.

    The stride sits on the 3x3 convolution ("ResNet v1.5"), as in torchvision. The inner width is
    ``int(planes * base_width / 64) * groups``, which gives ResNeXt (groups > 1) and wide ResNets
    (base_width > 64) from the same block.

    Args:
        inplanes: input channels.
        planes: the base width; the block outputs ``planes * expansion`` (4x) channels.
        stride: the stride of the 3x3 (or of the first 1x1 with ``stride_in_1x1``).
        downsample: the shortcut's projection (a 1x1 convolution + norm), or None for the identity.
        groups: grouped convolution in the 3x3 (ResNeXt's cardinality).
        base_width: width per group (64 for a plain ResNet; 128 for a wide ResNet-2).
        norm_layer: the norm constructor (default ``nn.BatchNorm2d``).
        se: add a squeeze-and-excitation module after the last norm (SE-ResNet); same as
            ``attn_layer="se"``.
        drop_path: stochastic-depth rate of this block (0: none).
        dilation: the dilation of the 3x3 (of later blocks of a dilated stage).
        stride_in_1x1: put the stride on the first 1x1 (ResNet v1, transformers' ``downsample_in_bottleneck``).
        first_dilation: the dilation of this block's 3x3 when it differs (the first block of a
            dilated stage keeps the previous stage's; default ``dilation``).
        attn_layer: channel attention after the last norm: "se" or "eca".
        attn_rd_ratio: the squeeze-and-excitation's reduction (1/16; ResNet-RS 1/4).
        aa_layer: anti-aliased downsampling, "avg" or "blur": a strided 3x3 runs at stride 1 and
            the subsampling follows its activation.
        reduce_first: the first 1x1's output width is the inner width // ``reduce_first`` (SENet-154: 2).

    Examples:
        >>> import torch
        >>> from resnetkit import Bottleneck, conv1x1
        >>> block = Bottleneck(64, 64, downsample=torch.nn.Sequential(conv1x1(64, 256), torch.nn.BatchNorm2d(256)))
        >>> block(torch.randn(1, 64, 56, 56)).shape
        torch.Size([1, 256, 56, 56])
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = None,
        se: bool = False,
        drop_path: float = 0.0,
        stride_in_1x1: bool = False,
        first_dilation: Optional[int] = None,
        attn_layer: Optional[str] = None,
        attn_rd_ratio: float = 1.0 / 16,
        aa_layer: Optional[str] = None,
        reduce_first: int = 1,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        if width < 1:
            raise InvalidOption(
                f"Bottleneck inner width is 0 for planes={planes}, width_per_group={base_width}, "
                f"groups={groups}; increase width_per_group"
            )
        first_dilation = dilation if first_dilation is None else first_dilation
        first_planes = width // reduce_first
        use_aa = aa_layer is not None and (stride == 2 or first_dilation != dilation)
        stride_3x3 = 1 if (stride_in_1x1 or use_aa) else stride
        # ResNet v1.5 puts the stride on the 3x3; v1 (``stride_in_1x1``) on the first 1x1.
        self.conv1 = conv1x1(inplanes, first_planes, stride if stride_in_1x1 else 1)
        self.bn1 = norm_layer(first_planes)
        self.conv2 = conv3x3(first_planes, width, stride_3x3, groups, first_dilation)
        self.bn2 = norm_layer(width)
        if use_aa:
            self.aa = anti_alias(aa_layer, width, stride)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.se = attention("se" if se else attn_layer, planes * self.expansion, attn_rd_ratio)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = drop_path_layer(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        if hasattr(self, "aa"):
            out = self.aa(out)

        out = self.conv3(out)
        out = self.bn3(out)
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


def last_norm(block: nn.Module) -> Optional[nn.Module]:
    """The norm layer that closes a block's residual branch (zeroed by ``zero_init_residual``)."""
    if isinstance(block, Bottleneck):
        return block.bn3
    if isinstance(block, BasicBlock):
        return block.bn2
    return None


__all__ = ["conv3x3", "conv1x1", "BasicBlock", "Bottleneck", "last_norm", "NormLayer"]
