"""Sweeps and representatives: ``make test`` runs one representative per code path, ``make
test-scale`` (which CI runs too) the whole sweep. ``sweep(values, keep)`` gives pytest parameters
where the values not in ``keep`` carry the ``sweep`` mark, which ``make test`` deselects."""

from typing import Any, Iterable, List

import pytest


def sweep(values: Iterable[Any], keep: Iterable[Any], several: bool = False) -> List[Any]:
    """``several``: each value is a tuple of several arguments (``parametrize("a,b", ...)``)."""
    kept = list(keep)

    def marked(v: Any) -> Any:
        return pytest.param(*(v if several else (v,)), marks=pytest.mark.sweep)

    return [v if v in kept else marked(v) for v in values]
