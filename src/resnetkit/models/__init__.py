"""The network. Imports torch only (torchvision.ops on demand), never another resnetkit layer
except the exception hierarchy at the bottom."""

from .base import FeatureInfo, ResNetBase, feature_take_indices
from .blocks import BasicBlock, Bottleneck, conv1x1, conv3x3
from .builders import ARCHITECTURES, CIFAR_DEPTHS, VARIANTS, make_resnet
from .cifar import CifarResNet
from .features import FeatureResNet
from .norm import NORM_LAYERS, frozen_batch_norm, group_norm
from .registry import build_architecture, get_constructor, list_models, register_model
from .resnet import ResNet

__all__ = [
    "ARCHITECTURES",
    "CIFAR_DEPTHS",
    "VARIANTS",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "FeatureInfo",
    "FeatureResNet",
    "NORM_LAYERS",
    "ResNet",
    "ResNetBase",
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
