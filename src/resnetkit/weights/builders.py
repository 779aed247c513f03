"""The public builders: architecture plus weights (``weights=``, legacy ``pretrained=``, ``progress``)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any, Optional, Union

from torch import nn

from .. import models
from ..errors import ResnetkitError
from .catalog import WEIGHT_ENUMS, WeightsEntry, WeightsEnum, find_weights
from .download import fetch_url
from .io import read_weights_file
from .loading import load_weights

WeightsArg = Union[None, str, WeightsEntry, WeightsEnum, Path]


def _legacy_entry(arch: str) -> WeightsEntry:
    entry = find_weights(f"{arch}.IMAGENET1K_V1")
    if entry is None:  # pragma: no cover - every builder has V1
        raise ResnetkitError(f"{arch} has no IMAGENET1K_V1 weights")
    return entry


def resolve_weights(arch: str, weights: WeightsArg, progress: bool = True):
    """(state_dict, num_classes or None) for what a user passed as ``weights=``."""
    if isinstance(weights, WeightsEnum):
        weights = weights.value
    if isinstance(weights, WeightsEntry):
        if weights.arch != arch:
            raise ValueError(f"weights {weights.name} are for {weights.arch}, not {arch}; use rk.{weights.arch}(...)")
        return weights.get_state_dict(progress=progress), weights.num_classes
    text = str(weights)
    if isinstance(weights, str) and text.startswith(("http://", "https://")):
        state, meta = read_weights_file(fetch_url(text, progress=progress))
        return state, meta.get("num_classes")
    path = Path(text).expanduser()
    if path.is_file():
        state, meta = read_weights_file(path)
        return state, meta.get("num_classes")
    entry = find_weights(text, arch=arch)
    if entry is None:
        tags = ", ".join(["DEFAULT", *[m for m in WEIGHT_ENUMS[arch].__members__ if m != "DEFAULT"]]) if arch in WEIGHT_ENUMS else ""
        raise ValueError(
            f"weights={weights!r} for {arch}: not a catalog tag ({tags}), an existing file or an http(s) URL"
        )
    return resolve_weights(arch, entry, progress)


def build(arch: str, weights: WeightsArg = None, progress: bool = True, pretrained: Optional[bool] = None,
          **options: Any) -> nn.Module:
    """Build ``arch`` and load ``weights``. With weights, ``num_classes`` defaults to theirs; a
    different ``num_classes`` keeps the pretrained backbone and gives a freshly initialised head."""
    if pretrained is not None:
        if weights is not None:
            raise ValueError("pass either weights= or the legacy pretrained=, not both")
        warnings.warn(
            f"pretrained=True is deprecated; use weights='IMAGENET1K_V1' (what it loads) or weights='DEFAULT' "
            f"(the best published weights) with resnetkit.{arch}",
            FutureWarning,
            stacklevel=3,
        )
        weights = _legacy_entry(arch) if pretrained else None
    if weights is None:
        return models.get_model(arch, **options)
    state, weights_classes = resolve_weights(arch, weights, progress)
    if weights_classes is None and "fc.weight" in state:
        weights_classes = int(state["fc.weight"].shape[0])
    head = "keep"
    if "num_classes" not in options and weights_classes is not None:
        options["num_classes"] = weights_classes
    elif weights_classes is not None and options.get("num_classes") != weights_classes:
        head = "reset"
    model = models.get_model(arch, **options)
    load_weights(model, state, head=head, source=str(getattr(weights, "name", weights)))
    return model


def _builder(arch: str):
    raw = models.get_builder(arch)

    @functools.wraps(raw)
    def builder(pretrained: Optional[bool] = None, progress: bool = True, *, weights: WeightsArg = None,
                **options: Any) -> nn.Module:
        return build(arch, weights=weights, progress=progress, pretrained=pretrained, **options)

    builder.__doc__ = (raw.__doc__ or "") + (
        "\n\n    weights: None, a catalog tag ('IMAGENET1K_V2', 'DEFAULT'), an enum member, a local file or"
        "\n    an http(s) URL. pretrained=True (legacy) loads IMAGENET1K_V1. Other options go to ResNet."
    )
    return builder


resnet18 = _builder("resnet18")
resnet34 = _builder("resnet34")
resnet50 = _builder("resnet50")
resnet101 = _builder("resnet101")
resnet152 = _builder("resnet152")
resnext50_32x4d = _builder("resnext50_32x4d")
resnext101_32x8d = _builder("resnext101_32x8d")
resnext101_64x4d = _builder("resnext101_64x4d")
wide_resnet50_2 = _builder("wide_resnet50_2")
wide_resnet101_2 = _builder("wide_resnet101_2")


def get_model(name: str, weights: WeightsArg = None, progress: bool = True, **options: Any) -> nn.Module:
    """Build a registered architecture by name, optionally with weights (see the builders)."""
    models.get_builder(name)  # unknown names fail here, with suggestions
    return build(name, weights=weights, progress=progress, **options)


__all__ = ["build", "get_model", "resolve_weights"] + list(models.ARCHITECTURES)
