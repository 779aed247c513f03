"""Backbone use: the stage outputs of a classifier as a list of feature maps (for detection,
segmentation, ...), with output stride 32, 16 or 8 through dilation."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from torch import Tensor, nn

from .resnet import check_input

OUTPUT_STRIDES = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


def dilation_for(output_stride: int) -> List[bool]:
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride!r}")
    return list(OUTPUT_STRIDES[output_stride])


def stem_info(model: nn.Module) -> Dict[str, object]:
    """Feature info of the stem output (after its ReLU): the channels entering stage 1."""
    return {"num_chs": model.layer1[0].conv1.in_channels, "reduction": getattr(model, "stem_reduction", 2),
            "module": "relu"}


class FeatureResNet(nn.Module):
    """The stem and stages of a ResNet-family model, returning the maps at ``out_indices``
    (0 = stem after ReLU, 1.. = stages). Module names equal the classifier's, so its weights load
    (the head is dropped)."""

    def __init__(self, model: nn.Module, out_indices: Sequence[int] = (1, 2, 3, 4)) -> None:
        super().__init__()
        infos = [stem_info(model)] + [dict(f) for f in model.feature_info]
        indices = sorted(set(int(i) for i in out_indices))
        if not indices or indices[0] < 0 or indices[-1] >= len(infos):
            raise ValueError(f"out_indices must be within 0..{len(infos) - 1} (0 = stem), got {tuple(out_indices)}")
        self.in_chans = model.in_chans
        self.out_indices = indices
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        all_stages = [f["module"] for f in model.feature_info]
        self.stage_names = all_stages[: indices[-1]]
        # Parts of the classifier this backbone does not run: their weights are skipped on load.
        self.dropped_modules = tuple(all_stages[indices[-1]:]) + ("fc",)
        for name in self.stage_names:
            setattr(self, name, getattr(model, name))
        self.feature_info = [infos[i] for i in indices]

    def forward(self, x: Tensor) -> List[Tensor]:
        x = check_input(x, self.in_chans)
        x = self.relu(self.bn1(self.conv1(x)))
        out: List[Tensor] = []
        if 0 in self.out_indices:
            out.append(x)
        x = self.maxpool(x)
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i + 1 in self.out_indices:
                out.append(x)
        return out


def as_features(model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> FeatureResNet:
    n = len(model.feature_info)
    return FeatureResNet(model, tuple(range(1, n + 1)) if out_indices is None else out_indices)
