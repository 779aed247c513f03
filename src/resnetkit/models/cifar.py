"""The CIFAR-10 ResNets of He et al. 2015, Section 4.2 / Table 6: 6n+2 layers, three stages of
16/32/64 channels on 32x32 inputs, a 3x3 stem, and option-A (parameter-free) shortcuts."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..errors import InvalidOption
from .base import FeatureInfo, ResNetBase, is_int
from .blocks import BasicBlock, conv3x3
from .layers import ShortcutA
from .resnet import init_weights, validate_io


class CifarResNet(ResNetBase):
    """ResNet-(6n+2) for 32x32 images; ``n`` blocks per stage."""

    default_input_size = 32

    def __init__(
        self,
        n: int,
        num_classes: int = 10,
        in_chans: int = 3,
        norm_layer: Optional[Callable[[int], nn.Module]] = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if not is_int(n) or n < 1:
            raise InvalidOption(f"n (blocks per stage) must be a positive integer, got {n!r}")
        validate_io(num_classes, in_chans)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.in_chans = in_chans
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = norm_layer(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.stem_reduction = 1
        self.feature_info = FeatureInfo([{"num_chs": 16, "reduction": 1, "module": "relu", "index": 0}])
        inplanes, reduction = 16, 1
        for i, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2))):
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                shortcut = ShortcutA(width, s) if (s != 1 or inplanes != width) else None
                blocks.append(BasicBlock(inplanes, width, s, shortcut, norm_layer=norm_layer))
                inplanes = width
            reduction *= stride
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(
                {"num_chs": width, "reduction": reduction, "module": f"layer{i + 1}", "index": i + 1}
            )
        self.stage_names = ("layer1", "layer2", "layer3")
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 64
        self.num_classes = num_classes
        self.fc = nn.Linear(64, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                weight = getattr(m.bn2, "weight", None) if isinstance(m, BasicBlock) else None
                if isinstance(weight, torch.Tensor):
                    nn.init.constant_(weight, 0)
