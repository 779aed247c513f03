"""Lazy package faces (PEP 562): a package's public names are imported by the first lookup, not by
importing the package, so that a torch-free module below it (a data table, an argument parser's
constants) can be imported without loading torch. Used by every package whose modules import torch."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable, Dict, Iterable, List, Tuple


class _Face(types.ModuleType):
    """A package whose public name is also the name of its submodule (``deploy.export`` the function,
    in ``deploy/export.py``): importing the submodule makes Python set the package's attribute to
    the module, which would shadow the function for every later ``from package import name``. The
    package keeps the function instead, as an eager ``from .export import export`` would."""

    _shadowed: frozenset = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._shadowed and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


def faces(package: str, names: Dict[str, Iterable[str]]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package``, given {submodule: the names it exports}."""
    where = {name: module for module, exported in names.items() for name in exported}
    space = importlib.import_module(package).__dict__
    shadowed = frozenset(name for name, module in where.items() if name == module)
    if shadowed:
        face = sys.modules[package]
        face.__class__ = _Face
        face._shadowed = shadowed  # type: ignore[attr-defined]

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
