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


def apply_card(model: nn.Module, loaded: LoadedWeights) -> None:
    """Give ``model`` the card of the weights just loaded into it (where they came from, their
    classes and preprocessing), adjusted to the model's own head; predict/eval/export read it."""
    if not isinstance(model, ResNetBase):
        return
    card = loaded.card
    same_head = model.num_classes == loaded.num_classes
    model.card = card.but(
        arch=model.arch or loaded.arch,
        num_classes=model.num_classes,
        classes=tuple(loaded.classes) if same_head and loaded.classes else None,
        in_chans=model.in_chans,
        source=loaded.source,
        format="pytorch",  # what the model is now; the file's hash was checked when it was read
        weights_sha256=None,
    )


def check_build_options(model: nn.Module, loaded: LoadedWeights) -> None:
    """Weights that need a build option (e.g. transformers' downsample_in_bottleneck, stride_in_1x1
    here) have the same keys and shapes either way, so they would load into a model built without it
    and compute something else: refuse, naming the option."""
    for key, value in loaded.model_options.items():
        have = getattr(model, key, None)
        if have != value:
            arch = getattr(model, "arch", None) or loaded.arch
            raise InvalidOption(
                f"the weights {loaded.source} need {key}={value!r}, but this model was built with {key}={have!r}; "
                f"build it with rk.get_model({arch!r}, weights=...) (or pass {key}={value!r}) to use them",
                field=key,
            )


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
    if "in_chans" not in options and loaded.in_chans != 3:  # e.g. a grayscale checkpoint
        options["in_chans"] = loaded.in_chans
    if "norm_layer" not in options and loaded.card.norm in NORM_LAYERS:
        options["norm_layer"] = NORM_LAYERS[loaded.card.norm]
    model = build_architecture(
        name, features_only=features_only, out_indices=out_indices, output_stride=output_stride, **options
    )
    load_state(model, loaded.state, head=head, source=loaded.source)
    apply_card(model, loaded)
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
    """Build a registered architecture by name, optionally with weights (torchvision's ``get_model``).

    Args:
        name: a registered architecture (``resnetkit.list_models()``).
        weights: None (random), a catalog tag (``"IMAGENET1K_V2"``, ``"DEFAULT"``) or name, an enum
            member, a local file, a run directory, an http(s) URL or a Hugging Face Hub id.
        progress: show a download progress bar (on a terminal).
        pretrained: legacy torchvision flag: True loads IMAGENET1K_V1 (with a deprecation warning).
        features_only: a backbone returning the feature maps at ``out_indices`` instead of logits.
        out_indices: which maps a backbone returns (0 = stem, 1.. = stages; timm's rules).
        output_stride: 8 or 16 replaces the stride of the last stages with dilation.
        **options: architecture options: ``num_classes``, ``in_chans``, ``norm_layer``, ``groups``,
            ``width_per_group``, ``replace_stride_with_dilation``, ``zero_init_residual``, ...

    Returns:
        The model (a ResNetBase), with ``model.card`` saying where its weights came from.

    Raises:
        InvalidOption: an unknown name or an option outside its range.
        BadFile: weights that cannot be read, or that do not fit the architecture (with a diagnosis).
        DownloadError: published weights that cannot be downloaded (OfflineError when offline).

    Examples:
        >>> import resnetkit as rk
        >>> rk.get_model("resnet50", num_classes=10).fc
        Linear(in_features=2048, out_features=10, bias=True)
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
    """timm-style entry point (``timm.create_model``'s signature).

    Args:
        name: an architecture, or ``ARCH.TAG`` (``"resnet50.IMAGENET1K_V1"``, timm's
            ``"resnet50.a1_in1k"``) to pick published weights with ``pretrained=True``.
        pretrained: load the default published weights of the architecture (or the named tag's).
        features_only: a backbone returning feature maps (see ``get_model``).
        out_indices: which maps a backbone returns.
        output_stride: 8 or 16 for a dilated backbone.
        weights: any other weights source instead of ``pretrained`` (see ``get_model``).
        progress: show a download progress bar (on a terminal).
        **options: architecture options (``num_classes``, ``in_chans``, ``drop_path_rate``, ...).

    Returns:
        The model.

    Raises:
        InvalidOption: an unknown name, a tag without ``pretrained=True``, or both ``pretrained`` and ``weights``.
        BadFile: weights that cannot be read or do not fit.
        DownloadError: published weights that cannot be downloaded (OfflineError when offline).

    Examples:
        >>> import resnetkit as rk
        >>> backbone = rk.create_model("resnet50", features_only=True, out_indices=(2, 4))
        >>> backbone.feature_info.channels()
        [512, 2048]
    """
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
    """Load weights into an existing model (its card is updated: classes, preprocessing, source).

    Args:
        model: the model to load into.
        source: a state_dict, a file (.pt/.pth/.safetensors), a training run directory, a URL, a
            catalog name or a Hugging Face Hub id.
        head: ``"keep"`` (default: the classifier must fit) or ``"reset"`` (keep the model's own
            classifier when the class count differs: fine-tuning).
        progress: show a download progress bar (on a terminal).

    Returns:
        ``model``, with the weights in it.

    Raises:
        BadFile: weights that cannot be read or do not fit (the diagnosis names the keys and shapes).
        DownloadError: weights that cannot be downloaded (OfflineError when offline).

    Examples:
        >>> import resnetkit as rk
        >>> model = rk.resnet18(num_classes=10)
        >>> rk.load_weights(model, rk.resnet18(num_classes=10).state_dict()) is model
        True
    """
    if isinstance(source, dict):
        return load_state(model, source, head=head, source="the state_dict")
    loaded = resolve(source, arch=getattr(model, "arch", None), progress=progress)
    check_build_options(model, loaded)
    load_state(model, loaded.state, head=head, source=loaded.source)
    apply_card(model, loaded)
    return model


# ---- the public builders, torchvision's signatures ---------------------------------------------

# One docstring for the ten: what each builds comes from its first line; the rest is the same for all.
BUILDER_DOC = """{summary} ``weights`` as in ``get_model``.

    Args:
        weights: None (random), a tag of this architecture (``"DEFAULT"``, ``"IMAGENET1K_V1"``), an
            enum member, a file, a run directory, a URL or a Hub id (see ``get_model``).
        progress: show a download progress bar (on a terminal).
        **options: ``num_classes``, ``in_chans``, ``norm_layer``, ``zero_init_residual``,
            ``replace_stride_with_dilation``, ... (as torchvision's builder takes them).

    Returns:
        The model (torchvision's module names and outputs, bit for bit).

    Raises:
        InvalidOption: an option outside its range. BadFile / DownloadError: weights (see ``get_model``).

    Examples:
        >>> import resnetkit as rk
        >>> rk.{name}(num_classes=10).fc.out_features
        10
    """


def torchvision_builder(builder):
    """Give one of torchvision's ten builders the shared docstring (its own first line as summary)."""
    builder.__doc__ = BUILDER_DOC.format(summary=(builder.__doc__ or "").strip(), name=builder.__name__)
    return builder


@torchvision_builder
def resnet18(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-18 (He et al. 2015): BasicBlock, [2, 2, 2, 2]."""
    return get_model("resnet18", weights, progress, **options)


@torchvision_builder
def resnet34(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-34: BasicBlock, [3, 4, 6, 3]."""
    return get_model("resnet34", weights, progress, **options)


@torchvision_builder
def resnet50(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-50: Bottleneck, [3, 4, 6, 3] (the stride on the 3x3: "ResNet v1.5")."""
    return get_model("resnet50", weights, progress, **options)


@torchvision_builder
def resnet101(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-101: Bottleneck, [3, 4, 23, 3]."""
    return get_model("resnet101", weights, progress, **options)


@torchvision_builder
def resnet152(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNet-152: Bottleneck, [3, 8, 36, 3]."""
    return get_model("resnet152", weights, progress, **options)


@torchvision_builder
def resnext50_32x4d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-50 32x4d (Xie et al. 2016): Bottleneck, [3, 4, 6, 3], 32 groups of width 4."""
    return get_model("resnext50_32x4d", weights, progress, **options)


@torchvision_builder
def resnext101_32x8d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-101 32x8d: Bottleneck, [3, 4, 23, 3], 32 groups of width 8."""
    return get_model("resnext101_32x8d", weights, progress, **options)


@torchvision_builder
def resnext101_64x4d(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """ResNeXt-101 64x4d: Bottleneck, [3, 4, 23, 3], 64 groups of width 4."""
    return get_model("resnext101_64x4d", weights, progress, **options)


@torchvision_builder
def wide_resnet50_2(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): Bottleneck, [3, 4, 6, 3], inner width doubled."""
    return get_model("wide_resnet50_2", weights, progress, **options)


@torchvision_builder
def wide_resnet101_2(*, weights: Optional[WeightsSource] = None, progress: bool = True, **options: Any) -> ResNetBase:
    """Wide ResNet-101-2: Bottleneck, [3, 4, 23, 3], inner width doubled."""
    return get_model("wide_resnet101_2", weights, progress, **options)
