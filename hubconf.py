"""torch.hub entry points: torch.hub.load("<owner>/resnetkit", "resnet50", weights="DEFAULT").

Every registered architecture is an entry point; ``weights``/``progress`` and the ResNet options
work as in ``resnetkit.get_model``.
"""

import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "tqdm", "filelock"]

# A hub checkout is not installed: make its src/ importable.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from resnetkit import get_model as _get_model  # noqa: E402
from resnetkit import list_models as _list_models  # noqa: E402


def _entry(name):
    def entry(weights=None, progress=True, **options):
        return _get_model(name, weights=weights, progress=progress, **options)

    entry.__name__ = name
    entry.__doc__ = f"resnetkit {name}; weights=None | 'DEFAULT' | tag | file | URL; other options go to ResNet."
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
