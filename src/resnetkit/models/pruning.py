"""Pruned networks: a ResNet whose convolutions, norms and classifier have the widths a channel map
gives, layer by layer (timm's ``ecaresnet50d_pruned`` and ``ecaresnet101d_pruned``, pruned by Knapsack
pruning with inner distillation, Aflalo et al. 2020).

The map is data (``models/data/NAME.json``: each layer's weight shape, made by
scripts/make_pruned_maps.py from the lists timm ships), applied the way timm applies it: the full
network is built, then each listed layer is replaced by one of the listed shape, in module order (so
the new layers draw from the RNG in timm's order, and keep PyTorch's default initialisation, as
timm's do). Attention modules keep the sizes of the unpruned network (an ECA kernel depends on the
channel count it was designed for).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Dict, List

from torch import nn

from ..errors import InvalidOption
from .blocks import last_norm

CHANNEL_MAPS = ("ecaresnet50d_pruned", "ecaresnet101d_pruned")


def channel_map(name: str) -> Dict[str, List[int]]:
    """The layer shapes of the pruned network ``name`` (``{"layer1.0.conv1.weight": [47, 64, 1, 1], ...}``)."""
    if name not in CHANNEL_MAPS:
        raise InvalidOption(f"no channel map {name!r}; known: {', '.join(CHANNEL_MAPS)}", field="channel_map")
    text = resources.files("resnetkit.models").joinpath(f"data/{name}.json").read_text()
    return json.loads(text)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def apply_channel_map(model: nn.Module, shapes: Dict[str, List[int]], first_conv: str) -> None:
    """Give every conv, BatchNorm and linear layer listed in ``shapes`` the listed width (the input
    convolution keeps the model's input channels); then the model's feature widths follow."""
    for name, old in list(model.named_modules()):
        shape = shapes.get(f"{name}.weight")
        if shape is None:
            continue
        new: nn.Module
        if isinstance(old, nn.Conv2d):
            in_channels = old.in_channels if name == first_conv else shape[1]
            groups = shape[0] if old.groups > 1 else 1
            new = nn.Conv2d(
                shape[0] if old.groups > 1 else in_channels, shape[0], old.kernel_size, stride=old.stride,  # type: ignore[arg-type]
                padding=old.padding, dilation=old.dilation, groups=groups, bias=old.bias is not None,  # type: ignore[arg-type]
            )  # fmt: skip
        elif isinstance(old, nn.BatchNorm2d):
            new = nn.BatchNorm2d(shape[0], eps=old.eps, momentum=old.momentum, affine=old.affine)
        elif isinstance(old, nn.Linear):
            new = nn.Linear(shape[1], old.out_features, bias=old.bias is not None)
            model.num_features = shape[1]  # type: ignore[assignment]
        else:
            continue
        _replace(model, name, new)
    _widths_follow(model)


def _widths_follow(model: nn.Module) -> None:
    """feature_info (and num_features without a classifier) from the layers as they now are."""
    info = getattr(model, "feature_info", None)
    if not info:
        return
    info[0]["num_chs"] = model.bn1.num_features  # type: ignore[union-attr]
    for entry in info[1:]:
        stage = model.get_submodule(entry["module"])
        entry["num_chs"] = last_norm(stage[-1]).num_features  # type: ignore[index,union-attr]
    if not isinstance(getattr(model, "fc", None), nn.Linear):
        model.num_features = info[-1]["num_chs"]  # type: ignore[assignment]
