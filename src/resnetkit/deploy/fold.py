"""BatchNorm folding: every conv followed by its BatchNorm becomes one conv with a bias."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models import BasicBlock, Bottleneck, ResNet

# (conv, norm) attribute pairs inside each module type.
_PAIRS = {
    ResNet: [("conv1", "bn1")],
    BasicBlock: [("conv1", "bn1"), ("conv2", "bn2")],
    Bottleneck: [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")],
}


def _fold_pair(owner: nn.Module, conv_name: str, norm_name: str) -> bool:
    """Fuse ``owner.<norm_name>`` into ``owner.<conv_name>`` (names may be Sequential indices)."""
    conv, norm = getattr(owner, conv_name), getattr(owner, norm_name)
    if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats):
        return False
    setattr(owner, conv_name, fuse_conv_bn_eval(conv, norm))
    setattr(owner, norm_name, nn.Identity())
    return True


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` whose convolutions absorb the BatchNorm after them.

    The original is untouched. Only BatchNorm with running statistics is folded (GroupNorm and
    friends depend on the input and stay); the copy is in eval mode, and training it would be
    wrong (the folded statistics no longer update).
    """
    folded = copy.deepcopy(model).eval()
    count = 0
    for module in folded.modules():
        for kind, pairs in _PAIRS.items():
            if isinstance(module, kind):
                count += sum(_fold_pair(module, c, n) for c, n in pairs)
        downsample = getattr(module, "downsample", None)
        if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
            count += _fold_pair(downsample, "0", "1")
    folded.folded_batchnorms = count
    return folded
