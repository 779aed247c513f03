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


def get_model(name: str, **options) -> nn.Module:
    """Build architecture ``name`` with the given constructor options (num_classes, in_chans, ...)."""
    return get_builder(name)(**options)
