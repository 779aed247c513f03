"""The parts of a pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks";
BiT, Kolesnikov et al. 2020): weight-standardised convolution, normalisation layers that carry their
activation, the pre-activation blocks and their projection shortcuts.

In a pre-activation block the norm and ReLU come *before* each convolution, the shortcut adds the
block's input as it is (no ReLU after the addition), and a projection shortcut takes the normalised
input. Names and construction order are timm's ``resnetv2.py`` (``norm1``, ``conv1``, ...,
``downsample.conv``), so timm's weights load as they are.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AvgPoolSame, drop_path_layer

ConvLayer = Callable[..., nn.Conv2d]
NormAct = Callable[[int], nn.Module]


def same_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric padding that keeps a stride-1 output the input's size (timm's ``get_padding``)."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def conv2d(
    in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Conv2d:
    """A bias-free convolution with symmetric padding (timm's ``create_conv2d``)."""
    padding = same_padding(kernel_size, stride, dilation)
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=False)


class StdConv2d(nn.Conv2d):
    """A convolution with weight standardisation (Qiao et al. 2019): each filter is normalised to zero
    mean and unit variance before it is applied (BiT uses it with GroupNorm). The standardisation is
    ``F.batch_norm`` over each filter's weights, as timm computes it, so outputs match timm's exactly."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, dilation: int = 1, groups: int = 1,
        eps: float = 1e-8,
    ) -> None:  # fmt: skip
        padding = same_padding(kernel_size, stride, dilation)
        super().__init__(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=False)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        flat = self.weight.reshape(1, self.out_channels, -1)
        weight = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm followed by ReLU, with BatchNorm's parameters and buffers (its keys)."""

    has_activation = True  # deploy's BatchNorm folding must not drop the ReLU

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x), inplace=True)


class GroupNormAct(nn.GroupNorm):
    """GroupNorm (32 groups) followed by ReLU, with GroupNorm's parameters (BiT's norm)."""

    has_activation = True

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__(num_groups, num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps), inplace=True)


class EvoNormS0(nn.Module):
    """EvoNorm-S0 (Liu et al. 2020): normalisation and activation in one, without batch statistics:
    ``x * sigmoid(v * x) / group_std(x) * weight + bias`` over 32 channel groups."""

    has_activation = True

    def __init__(self, num_features: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1)
        n, c, h, w = x.shape
        grouped = x.reshape(n, self.groups, c // self.groups, h, w)
        std = grouped.float().var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(self.eps).sqrt().to(x.dtype)
        std = std.expand(grouped.shape).reshape(n, c, h, w)
        x = x * (x * self.v.view(shape).to(x.dtype)).sigmoid() / std
        return x * self.weight.view(shape).to(x.dtype) + self.bias.view(shape).to(x.dtype)


class FilterResponseNormTlu(nn.Module):
    """Filter response normalisation with a thresholded linear unit (Singh & Krishnan 2020): each
    channel divided by its root mean square over the image, scaled and shifted, then ``max(x, tau)``."""

    has_activation = True

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.tau = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1)
        rms = x.square().float().mean(dim=(2, 3), keepdim=True).add(self.eps).rsqrt().to(x.dtype)
        x = x * rms.expand(x.shape)
        x = x * self.weight.view(shape).to(x.dtype) + self.bias.view(shape).to(x.dtype)
        return torch.maximum(x, self.tau.reshape(shape).to(x.dtype))


NORM_ACTS = {"batch": BatchNormAct2d, "group": GroupNormAct, "evonorm_s0": EvoNormS0, "frn": FilterResponseNormTlu}


class Projection(nn.Module):
    """A pre-activation block's projection shortcut, applied to the normalised input: a strided 1x1
    convolution, or (``avg_down``) a 2x2 average pool, then a stride-1 1x1 convolution."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, dilation: int, avg_down: bool, conv: ConvLayer) -> None:
        super().__init__()
        if avg_down:
            if stride > 1 or dilation > 1:
                self.pool: nn.Module = (
                    AvgPoolSame() if dilation > 1 else nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                )
            else:
                self.pool = nn.Identity()
            self.conv = conv(in_chs, out_chs, 1)
        else:
            self.conv = conv(in_chs, out_chs, 1, stride=stride)
        self.norm = nn.Identity()  # pre-activation: the input is normalised already

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "pool"):
            x = self.pool(x)
        return self.norm(self.conv(x))


class PreActBottleneck(nn.Module):
    """norm-act -> 1x1 -> norm-act -> 3x3 (strided) -> norm-act -> 1x1, plus the shortcut (the input,
    or a projection of the normalised input). Inner width: the output width / 4."""

    expansion = 4
    preact = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int, dilation: int, first_dilation: int,
        projection: Optional[nn.Module], conv: ConvLayer, norm: NormAct, drop_path: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        mid = out_chs // 4
        self.downsample = projection
        self.norm1 = norm(in_chs)
        self.conv1 = conv(in_chs, mid, 1)
        self.norm2 = norm(mid)
        self.conv2 = conv(mid, mid, 3, stride=stride, dilation=first_dilation)
        self.norm3 = norm(mid)
        self.conv3 = conv(mid, out_chs, 1)
        self.drop_path = drop_path_layer(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x_preact = self.norm1(x)
        shortcut = self.downsample(x_preact) if self.downsample is not None else x
        x = self.conv1(x_preact)
        x = self.conv2(self.norm2(x))
        x = self.conv3(self.norm3(x))
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x + shortcut


class PreActBasic(nn.Module):
    """norm-act -> 3x3 (strided) -> norm-act -> 3x3, plus the shortcut."""

    expansion = 1
    preact = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int, dilation: int, first_dilation: int,
        projection: Optional[nn.Module], conv: ConvLayer, norm: NormAct, drop_path: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.downsample = projection
        self.norm1 = norm(in_chs)
        self.conv1 = conv(in_chs, out_chs, 3, stride=stride, dilation=first_dilation)
        self.norm2 = norm(out_chs)
        self.conv2 = conv(out_chs, out_chs, 3, dilation=dilation)
        self.drop_path = drop_path_layer(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x_preact = self.norm1(x)
        shortcut = self.downsample(x_preact) if self.downsample is not None else x
        x = self.conv1(x_preact)
        x = self.conv2(self.norm2(x))
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x + shortcut
