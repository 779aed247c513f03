"""Grad-CAM heat maps: where in the image the model looked for its top class.

The computation is the ``grad-cam`` package's ``GradCAM`` on the last stage of the network (the
usual target layer for ResNets; an earlier stage for inputs too small for it, see ``target_layer``);
this module only picks the layer, undoes the normalisation to
show the image the model saw, and blends the map over it."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import InvalidOption, MissingDependency

# Positions along the short side the target layer must keep: at 1x1 a map is one number and says nothing.
MIN_CAM_SIDE = 4


def target_layer(model: nn.Module, input_hw: Optional[Sequence[int]] = None) -> nn.Module:
    """The network's last stage (``layer4``; ``layer3`` for the CIFAR ResNets) - or, for an input so
    small that the last stage is under ``MIN_CAM_SIDE`` positions a side (32 px: 1x1 at stride 32), the
    deepest stage that still is (32 px: ``layer2``, 4x4)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise InvalidOption(
            "Grad-CAM needs the PyTorch network (gradients flow through it); an exported model "
            "(ONNX, OpenVINO, pt2) has none: use the weights it was exported from"
        )
    chosen = info[-1]
    if input_hw is not None:
        side = min(int(v) for v in input_hw)
        wide_enough = [f for f in info if -(-side // int(f["reduction"])) >= MIN_CAM_SIDE]
        chosen = wide_enough[-1] if wide_enough else info[0]
    return model.get_submodule(chosen["module"])


def require_grad_cam() -> None:
    """MissingDependency naming the extra, before any work is done, when grad-cam is not installed."""
    import importlib.util

    if importlib.util.find_spec("pytorch_grad_cam") is None:
        raise MissingDependency("Grad-CAM (--cam) needs the grad-cam package: pip install 'resnetkit[serve]'")


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: Optional[Sequence[int]] = None,
    layer: Optional[nn.Module] = None,
) -> np.ndarray:
    """(N, H, W) maps in [0, 1] at the input's resolution, for class ``targets[i]`` of image i
    (default: each image's top class), on ``layer`` (default: ``target_layer``). The model's
    train/eval mode and gradients are left as they were."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        raise MissingDependency("Grad-CAM needs the grad-cam package: pip install 'resnetkit[serve]'") from None
    layer = layer if layer is not None else target_layer(model, images.shape[-2:])
    was_training = model.training
    model.eval()
    try:
        chosen = [ClassifierOutputTarget(int(t)) for t in targets] if targets is not None else None
        with GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=images.float(), targets=chosen)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return np.asarray(maps, dtype=np.float32)


def shown_image(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The preprocessed (C, H, W) tensor the model saw, as an (H, W, 3) float array in [0, 1]."""
    m = torch.tensor(list(mean)).view(-1, 1, 1)
    s = torch.tensor(list(std)).view(-1, 1, 1)
    x = (image.detach().cpu().float() * s + m).clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x[:3].permute(1, 2, 0).numpy()


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heat map blended over the image (jet colours), as a PIL image."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return Image.fromarray(show_cam_on_image(rgb.astype(np.float32), heat, use_rgb=True, image_weight=1 - alpha))


# The short side of an overlay at least: a 32 px crop blown up to where a person can read it.
MIN_OVERLAY_SIDE = 256


def seen_region(width: int, height: int, resize_size: int, crop_size: int) -> tuple:
    """The box (left, top, right, bottom) of the original image that resize-short-side-then-center-crop
    keeps, in the original's pixels."""
    scale = min(width, height) / resize_size
    side_w = min(width, crop_size * scale)
    side_h = min(height, crop_size * scale)
    left, top = round((width - side_w) / 2), round((height - side_h) / 2)
    return (left, top, left + round(side_w), top + round(side_h))


def overlay_on_original(original: Image.Image, heat: np.ndarray, resize_size: int, crop_size: int) -> Image.Image:
    """The heat map over the part of the original image the model saw, at the original's resolution
    (and at least ``MIN_OVERLAY_SIDE`` on the short side) rather than the model's input size."""
    seen = original.convert("RGB").crop(seen_region(*original.size, resize_size, crop_size))
    short = min(seen.size)
    if short < MIN_OVERLAY_SIDE:
        factor = MIN_OVERLAY_SIDE / short
        seen = seen.resize((round(seen.width * factor), round(seen.height * factor)), Image.Resampling.BICUBIC)
    big_heat = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F").resize(
        seen.size, Image.Resampling.BILINEAR
    )
    heat_np = np.clip(np.asarray(big_heat, dtype=np.float32), 0.0, 1.0)
    return overlay(np.asarray(seen, dtype=np.float32) / 255.0, heat_np)


def cam_overlays(model: nn.Module, images: torch.Tensor, mean, std, targets=None) -> List[Image.Image]:
    """One overlay image per input image (see ``grad_cam``)."""
    maps = grad_cam(model, images, targets)
    return [overlay(shown_image(img, mean, std), heat) for img, heat in zip(images, maps)]
