"""Name -> builder registry for every architecture resnetkit knows."""

from __future__ import annotations

import difflib
from typing import Callable, Dict, List

from torch import nn

_BUILDERS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: make a builder reachable by its function name through ``get_model``."""
    _BUILDERS[fn.__name__] = fn
    return fn


def list_models() -> List[str]:
    """Names of all registered architectures, in registration order."""
    return list(_BUILDERS)


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``; unknown names raise ValueError with the closest names."""
    try:
        return _BUILDERS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_BUILDERS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see resnetkit.list_models()"
        raise ValueError(f"unknown model {name!r}: {hint} (known: {', '.join(_BUILDERS)})") from None


def get_model(name: str, features_only: bool = False, out_indices=None, output_stride=None,
              **options) -> nn.Module:
    """Build architecture ``name`` with the given constructor options (num_classes, in_chans, ...).

    ``output_stride`` 16 or 8 replaces the stride of the last stage(s) with dilation;
    ``features_only=True`` returns the backbone, whose forward gives the feature maps at
    ``out_indices`` (0 = stem, 1.. = stages; default all stages) as a list.
    """
    from .features import as_features, dilation_for

    builder = get_builder(name)
    if output_stride is not None:
        if options.get("replace_stride_with_dilation") is not None:
            raise ValueError("pass output_stride or replace_stride_with_dilation, not both")
        if output_stride != 32:
            options["replace_stride_with_dilation"] = dilation_for(output_stride)
    if out_indices is not None and not features_only:
        raise ValueError("out_indices needs features_only=True (or use model.forward_intermediates)")
    model = builder(**options)
    return as_features(model, out_indices) if features_only else model
