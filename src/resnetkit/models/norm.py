"""Norm layers offered besides nn.BatchNorm2d (``norm_layer=`` takes any callable of a channel count)."""

from __future__ import annotations

from torch import nn


def frozen_batch_norm(num_features: int) -> nn.Module:
    """BatchNorm with fixed statistics and affine parameters (buffers, not parameters): the usual
    choice when fine-tuning with batches too small for reliable batch statistics. This is
    torchvision.ops.FrozenBatchNorm2d (it loads a BatchNorm2d state_dict); imported on use, since
    importing torchvision costs about a second."""
    from torchvision.ops import FrozenBatchNorm2d

    return FrozenBatchNorm2d(num_features)


def group_norm(num_channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He 2018), fewer when the channel count is smaller."""
    groups = 32
    while num_channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, num_channels)


NORM_LAYERS = {"batch": None, "group": group_norm, "frozen": frozen_batch_norm}
