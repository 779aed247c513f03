"""torch.hub entry points: torch.hub.load("<owner>/resnetkit", "resnet50", weights="DEFAULT"),
or from a checkout: torch.hub.load("path/to/resnetkit", "resnet50", source="local").

Every registered architecture is an entry point (a test checks that the list is complete);
``weights``/``progress`` and the ResNet options work as in ``resnetkit.get_model``.
"""

import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "tqdm", "filelock"]

# A hub checkout is not installed: make its src/ importable.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from resnetkit import get_model as _get_model  # noqa: E402


def resnet18(weights=None, progress=True, **options):
    """resnetkit resnet18; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet18", weights=weights, progress=progress, **options)


def resnet34(weights=None, progress=True, **options):
    """resnetkit resnet34; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet34", weights=weights, progress=progress, **options)


def resnet50(weights=None, progress=True, **options):
    """resnetkit resnet50; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet50", weights=weights, progress=progress, **options)


def resnet101(weights=None, progress=True, **options):
    """resnetkit resnet101; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet101", weights=weights, progress=progress, **options)


def resnet152(weights=None, progress=True, **options):
    """resnetkit resnet152; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet152", weights=weights, progress=progress, **options)


def resnext50_32x4d(weights=None, progress=True, **options):
    """resnetkit resnext50_32x4d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnext50_32x4d", weights=weights, progress=progress, **options)


def resnext101_32x8d(weights=None, progress=True, **options):
    """resnetkit resnext101_32x8d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnext101_32x8d", weights=weights, progress=progress, **options)


def resnext101_64x4d(weights=None, progress=True, **options):
    """resnetkit resnext101_64x4d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnext101_64x4d", weights=weights, progress=progress, **options)


def wide_resnet50_2(weights=None, progress=True, **options):
    """resnetkit wide_resnet50_2; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("wide_resnet50_2", weights=weights, progress=progress, **options)


def wide_resnet101_2(weights=None, progress=True, **options):
    """resnetkit wide_resnet101_2; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("wide_resnet101_2", weights=weights, progress=progress, **options)


def resnet18d(weights=None, progress=True, **options):
    """resnetkit resnet18d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet18d", weights=weights, progress=progress, **options)


def resnet34d(weights=None, progress=True, **options):
    """resnetkit resnet34d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet34d", weights=weights, progress=progress, **options)


def resnet50c(weights=None, progress=True, **options):
    """resnetkit resnet50c; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet50c", weights=weights, progress=progress, **options)


def resnet50d(weights=None, progress=True, **options):
    """resnetkit resnet50d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet50d", weights=weights, progress=progress, **options)


def resnet101d(weights=None, progress=True, **options):
    """resnetkit resnet101d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet101d", weights=weights, progress=progress, **options)


def seresnet50(weights=None, progress=True, **options):
    """resnetkit seresnet50; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("seresnet50", weights=weights, progress=progress, **options)


def seresnext50_32x4d(weights=None, progress=True, **options):
    """resnetkit seresnext50_32x4d; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("seresnext50_32x4d", weights=weights, progress=progress, **options)


def resnet20(weights=None, progress=True, **options):
    """resnetkit resnet20; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet20", weights=weights, progress=progress, **options)


def resnet32(weights=None, progress=True, **options):
    """resnetkit resnet32; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet32", weights=weights, progress=progress, **options)


def resnet44(weights=None, progress=True, **options):
    """resnetkit resnet44; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet44", weights=weights, progress=progress, **options)


def resnet56(weights=None, progress=True, **options):
    """resnetkit resnet56; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet56", weights=weights, progress=progress, **options)


def resnet110(weights=None, progress=True, **options):
    """resnetkit resnet110; weights=None | 'DEFAULT' | tag | file | URL; other options go to the model."""
    return _get_model("resnet110", weights=weights, progress=progress, **options)
