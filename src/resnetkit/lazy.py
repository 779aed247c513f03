"""Lazy package faces (PEP 562): a package's public names are imported by the first lookup, not by
importing the package, so that a torch-free module below it (a data table, an argument parser's
constants) can be imported without loading torch. Used by every package whose modules import torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Iterable, List, Tuple


def faces(package: str, names: Dict[str, Iterable[str]]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package``, given {submodule: the names it exports}."""
    where = {name: module for module, exported in names.items() for name in exported}
    space = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        space[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> List[str]:
        return sorted(set(space) | set(where))

    return __getattr__, __dir__
