"""BatchNorm folding: every conv followed by its BatchNorm becomes one conv with a bias."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models import BasicBlock, Bottleneck, ResNet
from ..models.cifar import CifarResNet

# (conv, norm) attribute pairs inside each module type.
_PAIRS = {
    ResNet: [("conv1", "bn1")],
    CifarResNet: [("conv1", "bn1")],
    BasicBlock: [("conv1", "bn1"), ("conv2", "bn2")],
    Bottleneck: [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")],
}


def _fuse(conv_owner: nn.Module, conv_name: str, norm_owner: nn.Module, norm_name: str) -> bool:
    """Fuse ``norm_owner.<norm_name>`` into ``conv_owner.<conv_name>`` (names may be Sequential
    indices); the norm becomes an Identity. False if the pair is not (Conv2d, BatchNorm2d)."""
    conv, norm = getattr(conv_owner, conv_name), getattr(norm_owner, norm_name)
    if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats):
        return False
    if getattr(norm, "has_activation", False) or type(conv).forward is not nn.Conv2d.forward:
        return False  # a norm that carries its ReLU, or a convolution that transforms its weights (StdConv2d)
    setattr(conv_owner, conv_name, fuse_conv_bn_eval(conv, norm))
    setattr(norm_owner, norm_name, nn.Identity())
    return True


def _last_conv(owner: nn.Module, name: str):
    """(module, attribute) of the conv feeding a norm: the attribute itself, or the last layer of
    a Sequential such as the deep stem."""
    target = getattr(owner, name)
    if isinstance(target, nn.Sequential) and len(target):
        return target, list(target._modules)[-1]
    return owner, name


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` whose convolutions absorb the BatchNorm after them.

    The original is untouched. Only BatchNorm with running statistics is folded (GroupNorm and
    friends depend on the input and stay); the copy is in eval mode, and training it would be
    wrong (the folded statistics no longer update).
    """
    folded = copy.deepcopy(model).eval()
    count = 0
    for module in list(folded.modules()):
        if isinstance(module, nn.Sequential):
            # Shortcuts (conv, norm) or (pool, conv, norm), and a deep stem (conv, norm, relu, ...).
            names = list(module._modules)  # indices, or names (a ResNetV2 stem: conv, norm1, ...)
            for first, second in zip(names, names[1:]):
                count += _fuse(module, first, module, second)
        for kind, pairs in _PAIRS.items():
            if isinstance(module, kind):
                for conv_name, norm_name in pairs:
                    owner, name = _last_conv(module, conv_name)
                    count += _fuse(owner, name, module, norm_name)
    folded.folded_batchnorms = count  # type: ignore[assignment]
    return folded
