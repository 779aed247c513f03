"""What each stage of a network sees on one image: its feature maps (the most active channels, as
tiles) and a Grad-CAM overlay per stage, as data: URIs for the explain page."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch
from PIL import Image

from ..models import ResNetBase
from ..web import data_uri

TILES_PER_STAGE = 6
TILE_SIDE = 72
CAM_SIDE = 168


def png_uri(image: Image.Image) -> str:
    return data_uri(image, "PNG")


def jpeg_uri(image: Image.Image) -> str:
    return data_uri(image, "JPEG", quality=85)


def _tile(channel: torch.Tensor) -> str:
    x = channel.float()
    x = (x - x.min()) / (x.max() - x.min() + 1e-12)
    img = Image.fromarray((x.numpy() * 255).astype(np.uint8), mode="L")
    return png_uri(img.resize((TILE_SIDE, TILE_SIDE), Image.Resampling.NEAREST))


def stage_maps(net: ResNetBase, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The output of the stem (after the max-pool) and of every stage, for one image."""
    maps = {}
    with torch.no_grad():
        y = net.stem_pool(net.forward_stem(x))
        maps["stem"] = y
        for name in net.stage_names:
            y = net.stage(name)(y)
            maps[name] = y
    return maps


def top_channels(feature: torch.Tensor, count: int = TILES_PER_STAGE) -> List[Dict[str, Any]]:
    """The ``count`` channels with the highest mean activation, as image tiles."""
    means = feature[0].float().mean(dim=(1, 2))
    order = means.argsort(descending=True)[:count]
    return [{"channel": int(c), "mean": round(float(means[c]), 4), "src": _tile(feature[0, c])} for c in order]


def stage_cams(net: ResNetBase, x: torch.Tensor, shown: np.ndarray) -> Dict[str, str]:
    """A Grad-CAM overlay per stage, for the model's top class (each stage as the target layer)."""
    from .cam import grad_cam, overlay

    cams = {}
    for name in net.stage_names:
        heat = grad_cam(net, x, layer=net.stage(name))[0]
        cams[name] = jpeg_uri(overlay(shown, heat).resize((CAM_SIDE, CAM_SIDE), Image.Resampling.BILINEAR))
    return cams
