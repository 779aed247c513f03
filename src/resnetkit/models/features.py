"""Backbone use: the stage outputs of a classifier as a list of feature maps (for detection,
segmentation, ...), with output stride 32, 16 or 8 through dilation."""

from __future__ import annotations

from typing import List, Sequence, Union

from torch import Tensor, nn

from ..errors import InvalidOption
from .base import FeatureInfo, ResNetBase, feature_take_indices

OUTPUT_STRIDES = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


def dilation_for(output_stride: int) -> List[bool]:
    if output_stride not in OUTPUT_STRIDES:
        raise InvalidOption(f"output_stride must be 32, 16 or 8, got {output_stride!r}")
    return list(OUTPUT_STRIDES[output_stride])


class FeatureResNet(ResNetBase):
    """The stem and stages of a ResNet-family model, returning the maps at ``out_indices``
    (0 = stem after its activation, 1.. = stages; timm's index rules). Module names equal the
    classifier's, so its weights load (the classifier and unused stages are dropped)."""

    def __init__(
        self, model: ResNetBase, out_indices: Union[None, int, Sequence[int]] = None, as_dict: bool = False
    ) -> None:
        super().__init__()
        self.as_dict = as_dict
        every = FeatureInfo(dict(f) for f in model.feature_info)
        indices, last = feature_take_indices(len(every), out_indices)
        self.arch = model.arch
        self.in_chans = model.in_chans
        self.out_indices = tuple(indices)
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        self.stage_names = tuple(model.stage_names[:last])
        for name in self.stage_names:
            setattr(self, name, getattr(model, name))
        # Parts of the classifier this backbone does not run: their weights are skipped on load.
        self.dropped_modules = tuple(model.stage_names[last:]) + ("fc",)
        self.intermediate_info = FeatureInfo(every[: last + 1])
        self.feature_info = FeatureInfo(every[i] for i in indices)
        self.num_features = every[last]["num_chs"]
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.num_classes = 0
        self.card = model.card.but(num_classes=0, classes=None)

    def forward(self, x: Tensor):  # type: ignore[override]
        out: List[Tensor] = self.forward_intermediates(x, self.out_indices, intermediates_only=True)
        if self.as_dict:  # timm's FeatureDictNet: the maps by module name
            return dict(zip(self.feature_info.module_name(), out))
        return out
