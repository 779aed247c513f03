"""Name -> architecture registry: every architecture resnetkit knows, built without weights.

Every architecture of the table (``table.py``, pure data) is registered from the start, built by
``builders.make_model`` when first called (so listing names needs no torch); ``register_model`` adds more;
the public weights-aware builders (``resnetkit.resnet50(weights=...)``) live in
``resnetkit.weights.factory`` and build through this registry.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Union

from ..errors import InvalidOption
from .table import ARCHITECTURES

if TYPE_CHECKING:
    from .base import ResNetBase


class _Builtin:
    """The constructor of one architecture of the table: ``builders.make_model(name, **options)``,
    imported on the first call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, **options) -> ResNetBase:
        from .builders import make_model

        return make_model(self.name, **options)

    def __repr__(self) -> str:
        return f"make_model({self.name!r}, ...)"


_ARCHITECTURES: Dict[str, Callable[..., ResNetBase]] = {name: _Builtin(name) for name in ARCHITECTURES}


def register_model(name: str, constructor: Callable[..., ResNetBase]) -> Callable[..., ResNetBase]:
    """Make ``constructor(**options)`` buildable as ``name``; a second registration of a name is an error."""
    if name in _ARCHITECTURES:
        raise InvalidOption(f"architecture {name!r} is already registered")
    _ARCHITECTURES[name] = constructor
    return constructor


def list_models(
    include: Union[None, str, Sequence[str]] = None, exclude: Union[None, str, Sequence[str]] = None
) -> List[str]:
    """Names of the registered architectures, in registration order (as torchvision's ``list_models``).

    Args:
        include: keep the names matching any of these fnmatch patterns (``"resnet*"``).
        exclude: then drop the names matching any of these.

    Returns:
        The names, e.g. ``["resnet18", "resnet34", ...]``.

    Raises:
        Nothing: patterns that match no name give an empty list.

    Examples:
        >>> import resnetkit as rk
        >>> rk.list_models("wide*")
        ['wide_resnet50_2', 'wide_resnet101_2']
    """
    import fnmatch

    def patterns(value: Union[None, str, Sequence[str]]) -> List[str]:
        return [value] if isinstance(value, str) else list(value or [])

    names = list(_ARCHITECTURES)
    if include is not None:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns(include))]
    return [n for n in names if not any(fnmatch.fnmatch(n, p) for p in patterns(exclude))]


def get_constructor(name: str) -> Callable[..., ResNetBase]:
    """The constructor registered as ``name``; unknown names raise InvalidOption with the closest names."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_ARCHITECTURES), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see resnetkit.list_models()"
        raise InvalidOption(f"unknown model {name!r}: {hint}") from None


FEATURE_CLASSES = (None, "list", "getter", "hook", "fx", "dict")


def build_architecture(
    name: str,
    features_only: bool = False,
    out_indices: Union[None, int, Sequence[int]] = None,
    output_stride: Optional[int] = None,
    global_pool: Optional[str] = None,
    feature_cls: Optional[str] = None,
    **options,
) -> ResNetBase:
    """Build architecture ``name`` (random init) with ``ResNet`` options (num_classes, in_chans, ...).

    ``output_stride`` 16 or 8 replaces the stride of the last stage(s) with dilation;
    ``global_pool`` (avg, max, avgmax, catavgmax, or '' with num_classes=0: no pooling) sets the head
    as timm's ``create_model(..., global_pool=)`` does; ``features_only=True`` returns the backbone,
    whose forward gives the feature maps at ``out_indices`` (timm's rules: default all five, 0 = stem;
    an int n = the last n; negative indices count from the end) as a list - or, with
    ``feature_cls="dict"``, a dict by module name. timm's other feature classes ("getter", "hook",
    "fx") give the same maps as the list, so they are accepted and give the list.
    """
    from .features import FeatureResNet, dilation_for

    constructor = get_constructor(name)
    if feature_cls not in FEATURE_CLASSES:
        raise InvalidOption(
            f"feature_cls {feature_cls!r} is not one of {', '.join(map(repr, FEATURE_CLASSES[1:]))}",
            field="feature_cls",
        )
    if output_stride is not None:
        if options.get("replace_stride_with_dilation") is not None:
            raise InvalidOption("pass output_stride or replace_stride_with_dilation, not both")
        dilate = dilation_for(output_stride)
        if any(dilate):
            options["replace_stride_with_dilation"] = dilate
    if out_indices is not None and not features_only:
        raise InvalidOption("out_indices needs features_only=True (or use model.forward_intermediates)")
    if feature_cls is not None and not features_only:
        raise InvalidOption("feature_cls needs features_only=True", field="feature_cls")
    model = constructor(**options)
    model.arch = name
    if global_pool is not None:
        model.reset_classifier(model.num_classes, global_pool)
    if features_only:
        return FeatureResNet(model, out_indices, as_dict=feature_cls == "dict")
    return model
