"""Hugging Face transformers ResNet checkpoints: key mapping and ``config.json`` interpretation.

timm's ResNet family already uses torchvision's names, so its files load as they are.
transformers' ``ResNetModel``/``ResNetForImageClassification`` nests the same tensors differently:

    resnet.embedder.embedder.{convolution,normalization}      -> conv1, bn1
    resnet.encoder.stages.S.layers.B.shortcut.{convolution,normalization} -> layerS+1.B.downsample.{0,1}
    resnet.encoder.stages.S.layers.B.layer.K.{convolution,normalization}  -> layerS+1.B.conv{K+1}, bn{K+1}
    classifier.1                                               -> fc

and its ``config.json`` can describe networks with the same keys and shapes that compute something
else (the stride on the first 1x1 of a bottleneck, a strided first stage, another activation).
The config is therefore read whenever it is available and either mapped onto resnetkit's options
or refused, naming the option.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Pattern, Tuple

import torch

from ..errors import BadFile

_HF_PATTERNS: List[Tuple[Pattern[str], Any]] = [
    (re.compile(r"^(?:resnet\.)?embedder\.embedder\.convolution\.(.+)$"), r"conv1.\1"),
    (re.compile(r"^(?:resnet\.)?embedder\.embedder\.normalization\.(.+)$"), r"bn1.\1"),
    (
        re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.(.+)$"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0.{m[3]}",
    ),
    (
        re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.(.+)$"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1.{m[3]}",
    ),
    (
        re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.(.+)$"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.{m[4]}",
    ),
    (
        re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.(.+)$"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}.{m[4]}",
    ),
    (re.compile(r"^classifier\.1\.(.+)$"), r"fc.\1"),
]

# What a config must say for resnetkit's network to compute what transformers' does.
_STANDARD = {"embedding_size": 64, "hidden_act": "relu", "downsample_in_first_stage": False}
_WIDTHS = {"basic": [64, 128, 256, 512], "bottleneck": [256, 512, 1024, 2048]}
_DEPTHS = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (2, 2, 2, 2)): "resnet26",  # microsoft/resnet-26
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}


def is_hf_resnet(state: Dict[str, torch.Tensor]) -> bool:
    return any("embedder.embedder.convolution" in k for k in state)


def from_hf_transformers(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a transformers ResNet state_dict to resnetkit's keys (tensors are shared, not copied)."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, repl in _HF_PATTERNS:
            m = pattern.match(key)
            if m:
                out[m.expand(repl) if isinstance(repl, str) else repl(m)] = value
                break
        else:
            raise BadFile(f"unexpected key {key!r} in a transformers ResNet checkpoint; cannot convert it")
    return out


def interpret_config(config: Dict[str, Any], source: str) -> Dict[str, Any]:
    """Metadata (arch, model_options, in_chans, num_classes, classes) for a transformers ResNet
    ``config.json``; options resnetkit cannot reproduce are refused by name."""
    where = f"{source} (config.json)"
    for key, value in _STANDARD.items():
        if key in config and config[key] != value:
            raise BadFile(
                f"{where}: {key}={config[key]!r} is not supported (resnetkit's ResNets have {key}={value!r}); "
                "loading these weights would give wrong outputs, so they were refused"
            )
    layer_type = config.get("layer_type", "bottleneck")
    if layer_type not in _WIDTHS:
        raise BadFile(f"{where}: layer_type={layer_type!r} is not one of basic, bottleneck")
    hidden = list(config.get("hidden_sizes", _WIDTHS[layer_type]))
    if hidden != _WIDTHS[layer_type]:
        raise BadFile(
            f"{where}: hidden_sizes={hidden} is not supported for {layer_type} layers "
            f"(resnetkit's are {_WIDTHS[layer_type]})"
        )
    depths = tuple(config.get("depths", (3, 4, 6, 3)))
    arch = _DEPTHS.get((layer_type, depths))
    if arch is None:
        raise BadFile(f"{where}: depths={list(depths)} with {layer_type} layers matches no resnetkit architecture")
    meta: Dict[str, Any] = {"arch": arch, "in_chans": int(config.get("num_channels", 3)), "config_checked": True}
    options: Dict[str, Any] = {}
    if config.get("downsample_in_bottleneck") and layer_type == "bottleneck":
        options["stride_in_1x1"] = True  # ResNet v1: the stride sits on the first 1x1 convolution
    meta["model_options"] = options
    labels: Optional[Dict[str, str]] = config.get("id2label")
    if labels:
        ordered: List[str] = [str(labels[k]) for k in sorted(labels, key=lambda k: int(k))]
        if not all(re.fullmatch(r"LABEL_\d+", name) for name in ordered):
            meta["classes"] = ordered
        meta["num_classes"] = len(ordered)
    return meta


# PIL resampling codes as transformers' image processors record them ("resample": 3).
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
PREPROCESSOR_FILE = "preprocessor_config.json"


def interpret_preprocessor(config: Dict[str, Any], source: str) -> Dict[str, Any]:
    """The preprocessing (a card's ``preprocess`` record) a transformers ``preprocessor_config.json``
    describes, as its image processor applies it:

    - ConvNext's (microsoft/resnet-*): below 384 px, the short side resized to ``shortest_edge /
      crop_pct`` (truncated) and the middle ``shortest_edge`` cropped; from 384 px, both sides
      resized to ``shortest_edge`` (no crop);
    - ``shortest_edge`` with ``crop_size`` (BiT's, CLIP's): short side resized, the middle cropped;
    - ``height`` x ``width`` without a crop (ViT's): both sides resized.

    Then the pixels scaled by 1/255 and normalised by ``image_mean``/``image_std``. A setting resnetkit
    cannot reproduce is refused by name (BadFile), never approximated."""
    where = f"{source} ({PREPROCESSOR_FILE})"

    def fail(what: str) -> BadFile:
        return BadFile(f"{where}: {what}; resnetkit would feed the model other pixels, so the weights were refused")

    if not isinstance(config, dict):
        raise fail("not a JSON object")
    resample = config.get("resample", 2)
    if resample not in _RESAMPLE:
        raise fail(f"resample {resample!r} is not one of {', '.join(f'{k} ({v})' for k, v in _RESAMPLE.items())}")
    if config.get("do_rescale", True) and abs(float(config.get("rescale_factor", 1 / 255)) * 255 - 1) > 1e-6:
        raise fail(f"rescale_factor {config.get('rescale_factor')!r} is not 1/255")
    mean: Any = (0.0,)
    std: Any = (1.0,)
    if config.get("do_normalize", True):
        mean, std = config.get("image_mean", (0.5, 0.5, 0.5)), config.get("image_std", (0.5, 0.5, 0.5))
        mean, std = (
            ([mean] if isinstance(mean, (int, float)) else mean),
            ([std] if isinstance(std, (int, float)) else std),
        )
    size = config.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    kind = str(config.get("image_processor_type", ""))
    record: Dict[str, Any] = {"interpolation": _RESAMPLE[resample], "mean": list(mean), "std": list(std)}
    try:
        if kind.startswith("ConvNext") and "shortest_edge" in size:
            edge = int(size["shortest_edge"])
            pct = float(config.get("crop_pct", 224 / 256))
            if edge < 384:
                return dict(record, resize_size=int(edge / pct), crop_size=edge)
            return dict(record, resize_size=edge, crop_size=edge, crop_mode="squash")
        if "shortest_edge" in size:
            edge = int(size["shortest_edge"])
            crop = config.get("crop_size") or {}
            crop = crop if isinstance(crop, dict) else {"height": crop, "width": crop}
            if not config.get("do_center_crop", True) or not crop:
                raise fail(
                    "a resize without a center crop gives non-square inputs of any size; resnetkit crops squares"
                )
            if crop.get("height") != crop.get("width"):
                raise fail(f"crop_size {crop} is not square")
            return dict(record, resize_size=edge, crop_size=int(crop["height"]))
        if "height" in size and size.get("height") == size.get("width") and not config.get("do_center_crop"):
            side = int(size["height"])
            return dict(record, resize_size=side, crop_size=side, crop_mode="squash")
    except (TypeError, ValueError) as exc:
        raise fail(f"does not parse ({exc})") from None
    raise fail(f"the image processor {kind or 'without a type'} with size {size} is not one resnetkit reproduces")
