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
    classifier's, so its weights load (the classifier and unused stages are dropped). Any model of
    the family works (ResNet, ResNetV2, the CIFAR ResNets): the backbone holds the model's own
    modules and runs them with the model's own stem, stage and norm code."""

    def __init__(
        self, model: ResNetBase, out_indices: Union[None, int, Sequence[int]] = None, as_dict: bool = False
    ) -> None:
        super().__init__()
        self.as_dict = as_dict
        every = FeatureInfo(dict(f) for f in model.feature_info)
        indices, last = feature_take_indices(len(every), out_indices)
        # The model's own code for its parts (its stem, its stages' names, its final norm).
        self.__dict__["_family"] = type(model)
        for key in ("stem_type", "stem_feature", "groups", "base_width"):
            if key in model.__dict__:
                self.__dict__[key] = model.__dict__[key]
        dropped = model.truncate(last)
        for name, module in model.named_children():
            if name not in dropped:
                self.add_module(name, module)
        if "fc" in dropped:  # the interface's classifier, empty (a ResNetV2's head is gone altogether)
            self.fc = nn.Identity()
        self.arch = model.arch
        self.in_chans = model.in_chans
        self.out_indices = tuple(indices)
        self.stage_names = tuple(model.stage_names)
        # Parts of the classifier this backbone does not run: their weights are skipped on load.
        self.dropped_modules = tuple(dropped)
        self.intermediate_info = FeatureInfo(every[: last + 1])
        self.feature_info = FeatureInfo(every[i] for i in indices)
        self.num_features = every[last]["num_chs"]
        self.num_classes = 0
        self.card = model.card.but(num_classes=0, classes=None)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.__dict__["_family"].forward_stem(self, x)

    def stem_pool(self, x: Tensor) -> Tensor:
        return self.__dict__["_family"].stem_pool(self, x)

    def final_norm(self, x: Tensor) -> Tensor:
        return self.__dict__["_family"].final_norm(self, x) if "norm" in self._modules else x

    def stem_modules(self):
        return self.__dict__["_family"].stem_modules(self)

    @property
    def first_conv(self) -> str:
        return self.__dict__["_family"].first_conv.fget(self)

    @property
    def classifier_name(self) -> str:
        return self.__dict__["_family"].classifier_name.fget(self)

    def forward(self, x: Tensor):  # type: ignore[override]
        out: List[Tensor] = self.forward_intermediates(x, self.out_indices, intermediates_only=True)
        if self.as_dict:  # timm's FeatureDictNet: the maps by module name
            return dict(zip(self.feature_info.module_name(), out))
        return out
