"""Building the architectures of the table (``models/table.py``): its class and block names mapped
to the classes, a pruned network's channel map applied. Every name is registered with
``register_model`` at import; weights are layered on top by ``resnetkit.weights.factory``, whose
public builders (``resnet50(weights=...)``) build from here.
"""

from __future__ import annotations

from typing import Any, Dict, Type

from ..errors import InvalidOption
from .base import ResNetBase
from .blocks import BasicBlock, Bottleneck
from .cifar import CifarResNet
from .norm import NORM_LAYERS
from .pruning import apply_channel_map, channel_map
from .resnet import ResNet
from .resnetv2 import ResNetV2
from .table import ARCHITECTURES

CLASSES: Dict[str, Type[ResNetBase]] = {"ResNet": ResNet, "ResNetV2": ResNetV2, "CifarResNet": CifarResNet}
BLOCKS = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}
CIFAR_OPTIONS = ("num_classes", "in_chans", "norm_layer", "zero_init_residual")


def _fixed(name: str) -> Dict[str, Any]:
    """A row's options with its names made objects (blocks, a norm layer)."""
    fixed = dict(ARCHITECTURES[name].fixed)
    block = fixed.get("block")
    if isinstance(block, (list, tuple)):
        fixed["block"] = [BLOCKS[b] for b in block]
    elif block is not None:
        fixed["block"] = BLOCKS[block]
    if isinstance(fixed.get("norm_layer"), str):
        fixed["norm_layer"] = NORM_LAYERS[fixed["norm_layer"]]
    return fixed


def make_model(name: str, **options: Any) -> ResNetBase:
    """Construct the architecture ``name`` from its row; ``options`` are its class's keyword arguments."""
    arch = ARCHITECTURES[name]
    clash = sorted(set(arch.fixed) & set(options))
    if clash:
        raise InvalidOption(
            f"{name} fixes {', '.join(f'{k}={arch.fixed[k]}' for k in clash)}; build its class "
            f"({arch.cls}) directly for another value"
        )
    if arch.cls == "CifarResNet":
        unsupported = sorted(set(options) - set(CIFAR_OPTIONS))
        if unsupported:
            raise InvalidOption(
                f"{name} is a CIFAR ResNet (3x3 stem, 3 stages, option-A shortcuts): it does not take "
                f"{', '.join(unsupported)}; it accepts {', '.join(CIFAR_OPTIONS)}"
            )
    if arch.cls == "ResNetV2" and "norm_layer" in options:
        if options.pop("norm_layer") is not None:
            raise InvalidOption(
                f"{name} is a pre-activation ResNetV2: its norm comes with its activation "
                f"(norm={arch.fixed.get('norm', 'group')!r}); it takes no norm_layer",
                field="norm_layer",
            )
    model = CLASSES[arch.cls](**_fixed(name), **{**arch.defaults, **options})
    if arch.channel_map:
        apply_channel_map(model, channel_map(arch.channel_map), first_conv=model.first_conv)
    return model


def make_resnet(name: str, **options: Any) -> ResNetBase:
    """Construct the architecture ``name`` (kept under its earlier name)."""
    return make_model(name, **options)
