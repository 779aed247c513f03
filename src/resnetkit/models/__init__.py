"""The network. Imports torch only (torchvision.ops on demand), never another resnetkit layer
except the exception hierarchy at the bottom.

Lazy (resnetkit/lazy.py): `resnetkit.models.table` (pure data) imports without torch.
"""

from typing import TYPE_CHECKING

from ..lazy import faces

__getattr__, __dir__ = faces(
    __name__,
    {
        "base": ["FeatureInfo", "ResNetBase", "feature_take_indices"],
        "blocks": ["BasicBlock", "Bottleneck", "conv1x1", "conv3x3"],
        "builders": ["make_model", "make_resnet"],
        "cifar": ["CifarResNet"],
        "features": ["FeatureResNet"],
        "norm": ["NORM_LAYERS", "frozen_batch_norm", "group_norm"],
        "registry": ["build_architecture", "get_constructor", "list_models", "register_model"],
        "resnet": ["ResNet"],
        "resnetv2": ["ResNetV2"],
        "table": ["ARCHITECTURES", "TORCHVISION_NAMES", "Arch", "architecture_depths", "families"],
    },
)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .base import FeatureInfo, ResNetBase, feature_take_indices
    from .blocks import BasicBlock, Bottleneck, conv1x1, conv3x3
    from .builders import make_model, make_resnet
    from .cifar import CifarResNet
    from .features import FeatureResNet
    from .norm import NORM_LAYERS, frozen_batch_norm, group_norm
    from .registry import build_architecture, get_constructor, list_models, register_model
    from .resnet import ResNet
    from .resnetv2 import ResNetV2
    from .table import ARCHITECTURES, TORCHVISION_NAMES, Arch, architecture_depths, families

__all__ = [
    "ARCHITECTURES",
    "Arch",
    "architecture_depths",
    "TORCHVISION_NAMES",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "FeatureInfo",
    "FeatureResNet",
    "NORM_LAYERS",
    "ResNet",
    "ResNetBase",
    "ResNetV2",
    "families",
    "make_model",
    "build_architecture",
    "conv1x1",
    "conv3x3",
    "feature_take_indices",
    "frozen_batch_norm",
    "get_constructor",
    "group_norm",
    "list_models",
    "make_resnet",
    "register_model",
]
