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
