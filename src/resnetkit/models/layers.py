"""Building blocks of the ResNet variants: stochastic depth, the shortcuts' pooling, option-A shortcuts
(attention and anti-aliasing are in attention.py)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InvalidOption


def drop_path_layer(p: float):
    """Stochastic depth (Huang et al. 2016) for a residual branch, or None when ``p`` is 0: in
    training a sample's whole branch is dropped with probability ``p`` and survivors are scaled by
    1/(1-p); identity at eval. torchvision.ops.StochasticDepth (row mode) does exactly this; it is
    imported only when used, because importing torchvision costs about a second."""
    if not 0.0 <= p < 1.0:
        raise InvalidOption(f"drop path probability must be in [0, 1), got {p}")
    if p == 0.0:
        return None
    from torchvision.ops import StochasticDepth

    return StochasticDepth(p, mode="row")


class AvgPoolSame(nn.Module):
    """2x2 average pool with stride 1 and 'same' size (zero pad right/bottom), used in the ResNet-D
    shortcut of a dilated stage; matches timm's AvgPool2dSame for that case."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)


def avg_down_pool(stride: int, dilation: int) -> nn.Module:
    """The pooling step of a ResNet-D shortcut (He et al. 2019, "Bag of Tricks")."""
    if stride == 1 and dilation == 1:
        return nn.Identity()
    if stride == 1:
        return AvgPoolSame()
    return nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)


class ShortcutA(nn.Module):
    """Option A of He et al. 2015 (CIFAR): subsample spatially, zero-pad the new channels. No parameters."""

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        if extra > 0:
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x
