"""Preprocessing fused into the graph: a model that takes the decoded crop as it comes (uint8, NHWC)
and converts and normalises it itself, so a runtime (ONNX Runtime, OpenVINO) does that work inside
its own graph, and the caller hands it bytes - no PyTorch op between decoding and the runtime, and a
quarter of the data to move between processes.

The conversion is torchvision's (``ToDtype(scale=True)`` then ``Normalize``: x times 1/255, minus the mean,
over the std), in that order, so the fused model's input to the network is bit for bit what
``Preprocess.transform()`` gives in PyTorch."""

from __future__ import annotations

from typing import Any, List

import torch
from torch import Tensor, nn

from ..card import Preprocess


def channel_stats(preprocess: Preprocess, in_chans: int) -> tuple:
    """The mean and std per channel the model is fed with (an RGB record averaged for 1 channel)."""
    return preprocess.channel_stats(in_chans)


def normalise(pixels: Tensor, preprocess: Preprocess, in_chans: int) -> Tensor:
    """uint8 (N, H, W, C) crops -> the float (N, C, H, W) batch the network takes (outside a graph)."""
    mean, std = channel_stats(preprocess, in_chans)
    x = pixels.permute(0, 3, 1, 2).to(torch.float32).mul(1.0 / 255)
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


class Outputs(nn.Module):
    """The network's logits, optionally preceded by its pooled pre-logits features (one tensor,
    [features | logits]: every runtime returns one output the same way)."""

    def __init__(self, model: nn.Module, embeddings: bool = False) -> None:
        super().__init__()
        self.model, self.embeddings = model, embeddings
        self.in_chans = int(getattr(model, "in_chans", 3))

    def forward(self, x: Tensor) -> Tensor:
        model: Any = self.model
        if not self.embeddings:
            return model(x)
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        return torch.cat([features, model.classify(features)], dim=1)


class FlipAverage(nn.Module):
    """Test-time augmentation: the mean of ``model``'s outputs on the (N, C, H, W) images and on their
    mirror images (flipped left-right), in one batch of 2N. Part of the graph, so every runtime runs it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.in_chans = int(getattr(model, "in_chans", 3))

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(torch.cat([x, x.flip(3)]))
        n = x.shape[0]
        return (out[:n] + out[n:]) * 0.5


def with_tta(model: nn.Module, tta: str) -> nn.Module:
    """``model`` as test-time augmentation ``tta`` (targets.TTA_CHOICES) runs it."""
    from ..errors import InvalidOption
    from ..targets import TTA_CHOICES

    if tta not in TTA_CHOICES:
        raise InvalidOption(f"tta {tta!r} is not one of {', '.join(TTA_CHOICES)}", field="tta")
    return FlipAverage(model) if tta == "flip" else model


class FusedInput(nn.Module):
    """``model`` fed uint8 (N, H, W, C) crops, converted and normalised inside the graph."""

    def __init__(self, model: nn.Module, preprocess: Preprocess, in_chans: int) -> None:
        super().__init__()
        self.model = model
        self.in_chans = in_chans
        mean, std = channel_stats(preprocess, in_chans)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, pixels: Tensor) -> Tensor:
        # A permuted NHWC tensor is channels_last already: no copy before the first convolution.
        x = pixels.permute(0, 3, 1, 2).to(torch.float32).mul(1.0 / 255)
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        return self.model((x - mean) / std)

    def example_input(self, input_size: int, batch: int = 2) -> Tensor:
        """What exporters trace with: random crops in the layout and type the model takes."""
        gen = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (batch, input_size, input_size, self.in_chans), generator=gen, dtype=torch.uint8)

    def input_shape(self, input_size: int) -> List[int]:
        return [-1, input_size, input_size, self.in_chans]

    @staticmethod
    def pixels_of(images: Tensor, preprocess: Preprocess, in_chans: int) -> Tensor:
        """Normalised float (N, C, H, W) images back to the uint8 (N, H, W, C) crops they came from
        (calibration data collected as floats, for a fused int8 model)."""
        mean, std = channel_stats(preprocess, in_chans)
        x = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
        return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
