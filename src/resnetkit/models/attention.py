"""Channel attention and anti-aliased downsampling, the parts timm's ResNet variants add to a block.

- **Squeeze-and-excitation** (Hu et al. 2018, SE-ResNet, SENet-154; ResNet-RS at a quarter of the
  channels): global average -> 1x1 conv reduce -> ReLU -> 1x1 conv expand -> sigmoid gate.
- **Efficient channel attention** (Wang et al. 2020, ECA-ResNet): global average -> a 1-D
  convolution across the channels, its kernel size growing with log2 of the channel count -> sigmoid
  gate. No reduction, a handful of weights.
- **Anti-aliased downsampling** (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"):
  a strided layer becomes its stride-1 version followed by a low-pass filter that subsamples -
  a fixed binomial blur (``blur``, BlurPool) or a 2x2 average (``avg``, as timm's ResNet-AA).

Module and parameter names are timm's (``fc1``/``fc2``, ``conv``, a non-persistent ``filt``), so
timm's weights load as they are.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InvalidOption

ATTENTION = ("se", "eca")
ANTI_ALIAS = ("avg", "blur")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def squeeze_excite(channels: int, rd_ratio: float = 1.0 / 16) -> nn.Module:
    """Squeeze-and-excitation with ``rd_ratio`` of the channels (rounded to a multiple of 8) in the
    middle. torchvision.ops.SqueezeExcitation has timm's SEModule key names (``fc1``, ``fc2``) and
    builds them in the same order; imported only when an SE model is built."""
    from torchvision.ops import SqueezeExcitation

    return SqueezeExcitation(channels, make_divisible(channels * rd_ratio))


class EfficientChannelAttention(nn.Module):
    """ECA: a gate per channel from a 1-D convolution over the channels' global averages. The
    kernel size is the odd number nearest ``(log2(channels) + 1) / 2``, at least 3 (the paper's
    gamma 2, b 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        t = int(abs(math.log(channels, 2) + 1) / 2)
        kernel = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel, padding=(kernel - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.conv(y).sigmoid().view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


def attention(kind: Optional[str], channels: int, rd_ratio: float = 1.0 / 16) -> Optional[nn.Module]:
    """The attention module ``kind`` ("se", "eca" or None) for a block's ``channels`` outputs."""
    if kind is None:
        return None
    if kind == "se":
        return squeeze_excite(channels, rd_ratio)
    if kind == "eca":
        return EfficientChannelAttention(channels)
    raise InvalidOption(f"attention {kind!r} is not one of {', '.join(ATTENTION)} (or None)", field="attn_layer")


class BlurPool2d(nn.Module):
    """A 3x3 binomial low-pass filter ([1, 2, 1] x [1, 2, 1] / 16) applied per channel with reflect
    padding, then subsampled by ``stride``. The filter is a fixed, non-persistent buffer: not in the
    state_dict, nothing to learn."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels, self.stride = channels, stride
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer(
            "filt", (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).clone(), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        pad = (self.stride - 1 + 2) // 2  # "same"-style padding of a 3-tap filter at this stride
        x = F.pad(x, [pad] * 4, mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)  # type: ignore[arg-type]


def anti_alias(kind: Optional[str], channels: int, stride: int = 2) -> nn.Module:
    """The low-pass subsampling that follows a layer made stride 1 (``kind`` "blur" or "avg"); the
    identity for None. timm builds "avg" as ``nn.AvgPool2d(stride)`` (so a dilated stage, at stride
    1, gets a 1x1 average: the identity, but a module all the same)."""
    if kind is None:
        return nn.Identity()
    if kind == "blur":
        return BlurPool2d(channels, stride)
    if kind == "avg":
        return nn.AvgPool2d(stride)
    raise InvalidOption(f"aa_layer {kind!r} is not one of {', '.join(ANTI_ALIAS)} (or None)", field="aa_layer")
