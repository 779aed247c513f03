"""The ImageNet-1k class names (data/imagenet_classes.txt): the catalog, the Hub reader and loaded
weights all name a 1000-way classifier's outputs with them."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import List


@cache
def imagenet_classes() -> List[str]:
    """The 1000 ImageNet-1k class names, in the order of the published classifiers' outputs."""
    text = resources.files("resnetkit.weights").joinpath("data/imagenet_classes.txt").read_text()
    return text.strip().splitlines()
