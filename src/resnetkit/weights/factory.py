"""Models with weights: ``get_model``, timm-style ``create_model``, ``load_weights``, and the
public builders (``resnet50(weights=...)``), all resolving weights through ``resolve``."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence, Union

from torch import nn

from ..errors import InvalidOption
from ..models import NORM_LAYERS, ResNetBase, build_architecture, get_constructor
from .catalog import WEIGHT_ENUMS, find_weights
from .loading import load_state
from .resolve import LoadedWeights, WeightsSource, resolve

Indices = Union[None, int, Sequence[int]]


def apply_pretrained_cfg(model: nn.Module, loaded: LoadedWeights) -> None:
    """Record on ``model`` where its weights came from, its classes and its preprocessing, so
    predict/eval/export read them from the model."""
    if not isinstance(model, ResNetBase):
        return
    cfg = dict(model.pretrained_cfg)
    meta = loaded.meta
    cfg.update(
        architecture=model.arch or loaded.arch,
        source=loaded.source,
        tag=meta.get("weights"),
        num_classes=model.num_classes,
    )
    cfg["classes"] = loaded.classes if model.num_classes == loaded.num_classes else None
    pre = meta.get("preprocess")
    if isinstance(pre, dict) and {"resize_size", "crop_size"} <= set(pre):
        cfg["preprocess"] = dict(pre)
        crop, resize = int(pre["crop_size"]), int(pre["resize_size"])
        cfg["input_size"] = (model.in_chans, crop, crop)
        cfg["crop_pct"] = crop / resize
        cfg["interpolation"] = pre.get("interpolation", cfg["interpolation"])
        cfg["mean"], cfg["std"] = tuple(pre.get("mean", cfg["mean"])), tuple(pre.get("std", cfg["std"]))
    if meta.get("norm"):
        cfg["norm"] = meta["norm"]
    model.pretrained_cfg = cfg


def _legacy_pretrained(name: str, pretrained: Optional[bool], weights: Any, stacklevel: int) -> Any:
    if pretrained is None:
        return weights
    if weights is not None:
        raise InvalidOption("pass either weights= or the legacy pretrained=, not both")
    warnings.warn(
        f"pretrained=True is deprecated; use weights='IMAGENET1K_V1' (what it loads) or weights='DEFAULT' "
        f"(the best published weights) with resnetkit.{name}",
        FutureWarning,
        stacklevel=stacklevel,
    )
    if not pretrained:
        return None
    entry = find_weights(f"{name}.IMAGENET1K_V1")
    if entry is None:
        raise InvalidOption(f"{name} has no IMAGENET1K_V1 weights; pass weights= with a file or catalog name")
    return entry


def build_with_weights(
    name: str,
    loaded: LoadedWeights,
    features_only: bool = False,
    out_indices: Indices = None,
    output_stride: Optional[int] = None,
    **options: Any,
) -> ResNetBase:
    """Build ``name`` and load ``loaded`` into it. ``num_classes`` defaults to the weights'; a
    different ``num_classes`` keeps the pretrained backbone and gives a freshly initialised head."""
    for key, value in loaded.model_options.items():
        if key in options and options[key] != value:
            raise InvalidOption(
                f"the weights {loaded.source} need {key}={value!r}, but {key}={options[key]!r} was asked"
            )
        options[key] = value
    head = "keep"
    if loaded.num_classes and not features_only:
        if "num_classes" not in options:
            options["num_classes"] = loaded.num_classes
        elif options["num_classes"] != loaded.num_classes:
            head = "reset"
    if "norm_layer" not in options and loaded.meta.get("norm") in NORM_LAYERS:
        options["norm_layer"] = NORM_LAYERS[loaded.meta["norm"]]
    model = build_architecture(
        name, features_only=features_only, out_indices=out_indices, output_stride=output_stride, **options
    )
    load_state(model, loaded.state, head=head, source=loaded.source)
    apply_pretrained_cfg(model, loaded)
    return model


def get_model(
    name: str,
    weights: Optional[WeightsSource] = None,
    progress: bool = True,
    *,
    pretrained: Optional[bool] = None,
    features_only: bool = False,
    out_indices: Indices = None,
    output_stride: Optional[int] = None,
    **options: Any,
) -> ResNetBase:
    """Build a registered architecture by name, optionally with weights.

    weights: None, a catalog tag ('IMAGENET1K_V2', 'DEFAULT') or name, an enum member, a local
    file, a run directory or an http(s) URL. pretrained=True (legacy) loads IMAGENET1K_V1.
    features_only / out_indices / output_stride: see ``resnetkit.models.build_architecture``.
    Other options go to the architecture (num_classes, in_chans, norm_layer, ...).
    """
    get_constructor(name)  # unknown names fail here, with suggestions
    weights = _legacy_pretrained(name, pretrained, weights, stacklevel=3)
    if weights is None:
        return build_architecture(
            name, features_only=features_only, out_indices=out_indices, output_stride=output_stride, **options
        )
    loaded = resolve(weights, arch=name, progress=progress)
    return build_with_weights(name, loaded, features_only, out_indices, output_stride, **options)


def create_model(
    name: str,
    pretrained: bool = False,
    features_only: bool = False,
    out_indices: Indices = None,
    output_stride: Optional[int] = None,
    weights: Optional[WeightsSource] = None,
    progress: bool = True,
    **options: Any,
) -> ResNetBase:
    """timm-style entry point: ``create_model("resnet50", pretrained=True)`` loads the default
    published weights; ``"resnet50.IMAGENET1K_V1"`` (or timm's ``"resnet50.a1_in1k"``) picks a
    tag. ``weights=`` may name any other source instead."""
    arch, _, tag = name.partition(".")
    get_constructor(arch)
    if tag and not pretrained and weights is None:
        raise InvalidOption(f"{name!r} names weights; pass pretrained=True to load them (or use {arch!r})")
    if pretrained:
        if weights is not None:
            raise InvalidOption("pass pretrained=True or weights=, not both")
        entry = find_weights(name) if tag else find_weights(f"{arch}.DEFAULT")
        if entry is None:
            known = ", ".join(WEIGHT_ENUMS[arch].__members__) if arch in WEIGHT_ENUMS else "none in the catalog"
            raise InvalidOption(f"no published weights {name!r} (known for {arch}: {known})")
        weights = entry
    return get_model(
        arch,
        weights=weights,
        progress=progress,
        features_only=features_only,
        out_indices=out_indices,
        output_stride=output_stride,
        **options,
    )


def model_from_weights(loaded: LoadedWeights, arch: Optional[str] = None) -> ResNetBase:
    """The architecture the weights belong to, with them loaded (strict, with a diagnosis)."""
    arch = arch or loaded.arch
    if arch is None:
        raise InvalidOption(f"{loaded.source}: cannot tell which architecture these weights belong to; pass --arch")
    get_constructor(arch)
    return build_with_weights(arch, loaded, in_chans=loaded.in_chans)


def load_weights(
    model: nn.Module, source: Union[WeightsSource, Dict[str, Any]], head: str = "keep", progress: bool = True
) -> nn.Module:
    """Load weights into ``model`` from a state_dict, a file (.pt/.pth/.safetensors), a training
    run directory, a URL or a catalog name. ``head="reset"`` keeps the model's own classifier when
    the class count differs; a mismatch otherwise raises BadFile with a diagnosis."""
    if isinstance(source, dict):
        return load_state(model, source, head=head, source="the state_dict")
    loaded = resolve(source, arch=getattr(model, "arch", None), progress=progress)
    load_state(model, loaded.state, head=head, source=loaded.source)
    apply_pretrained_cfg(model, loaded)
    return model


# ---- the public builders, torchvision's signatures ---------------------------------------------


def resnet18(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-18 (He et al. 2015): BasicBlock, [2, 2, 2, 2]. ``weights`` as in ``get_model``."""
    return get_model("resnet18", weights, progress, **options)


def resnet34(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-34: BasicBlock, [3, 4, 6, 3]."""
    return get_model("resnet34", weights, progress, **options)


def resnet50(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-50 (v1.5, stride on the 3x3): Bottleneck, [3, 4, 6, 3]."""
    return get_model("resnet50", weights, progress, **options)


def resnet101(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-101: Bottleneck, [3, 4, 23, 3]."""
    return get_model("resnet101", weights, progress, **options)


def resnet152(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-152: Bottleneck, [3, 8, 36, 3]."""
    return get_model("resnet152", weights, progress, **options)


def resnext50_32x4d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-50 32x4d (Xie et al. 2016): 32 groups of width 4, [3, 4, 6, 3]."""
    return get_model("resnext50_32x4d", weights, progress, **options)


def resnext101_32x8d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-101 32x8d: 32 groups of width 8, [3, 4, 23, 3]."""
    return get_model("resnext101_32x8d", weights, progress, **options)


def resnext101_64x4d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-101 64x4d: 64 groups of width 4, [3, 4, 23, 3]."""
    return get_model("resnext101_64x4d", weights, progress, **options)


def wide_resnet50_2(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): bottleneck twice as wide, [3, 4, 6, 3]."""
    return get_model("wide_resnet50_2", weights, progress, **options)


def wide_resnet101_2(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """Wide ResNet-101-2: bottleneck twice as wide, [3, 4, 23, 3]."""
    return get_model("wide_resnet101_2", weights, progress, **options)
