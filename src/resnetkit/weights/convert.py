"""Key mappings from other libraries' ResNet checkpoints to resnetkit's (torchvision) layout.

timm's ResNet family already uses torchvision's names, so its files load as they are. Hugging Face
transformers' ``ResNetModel``/``ResNetForImageClassification`` nests the same tensors differently:

    resnet.embedder.embedder.{convolution,normalization}      -> conv1, bn1
    resnet.encoder.stages.S.layers.B.shortcut.{convolution,normalization} -> layerS+1.B.downsample.{0,1}
    resnet.encoder.stages.S.layers.B.layer.K.{convolution,normalization}  -> layerS+1.B.conv{K+1}, bn{K+1}
    classifier.1                                               -> fc
"""

from __future__ import annotations

import re
from typing import Dict

import torch

from ..errors import ResnetkitError

_HF_PATTERNS = [
    (re.compile(r"^(?:resnet\.)?embedder\.embedder\.convolution\.(.+)$"), r"conv1.\1"),
    (re.compile(r"^(?:resnet\.)?embedder\.embedder\.normalization\.(.+)$"), r"bn1.\1"),
    (re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.(.+)$"),
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0.{m[3]}"),
    (re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.(.+)$"),
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1.{m[3]}"),
    (re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.(.+)$"),
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.{m[4]}"),
    (re.compile(r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.(.+)$"),
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}.{m[4]}"),
    (re.compile(r"^classifier\.1\.(.+)$"), r"fc.\1"),
]


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
            raise ResnetkitError(f"unexpected key {key!r} in a transformers ResNet checkpoint; cannot convert it")
    return out
