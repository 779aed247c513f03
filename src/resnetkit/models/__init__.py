"""The network itself. Imports torch only, never another resnetkit layer."""

from .blocks import BasicBlock, Bottleneck, conv1x1, conv3x3
from .builders import (
    ARCHITECTURES,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    resnext101_32x8d,
    resnext101_64x4d,
    wide_resnet50_2,
    wide_resnet101_2,
)
from .registry import get_builder, get_model, list_models, register_model
from .norm import FrozenBatchNorm2d, group_norm
from .resnet import ResNet

__all__ = [
    "ARCHITECTURES",
    "BasicBlock",
    "Bottleneck",
    "FrozenBatchNorm2d",
    "ResNet",
    "group_norm",
    "conv1x1",
    "conv3x3",
    "get_builder",
    "get_model",
    "list_models",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
