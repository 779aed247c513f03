"""resnetkit: the torchvision-exact ResNet family and everything around it.

Importing resnetkit imports torch, not torchvision (which the data transforms, the model
variants' layers and the CLI load when they are used)."""

import importlib
from typing import TYPE_CHECKING, Any, Optional

from .errors import BadFile, InvalidOption, MissingDependency, ResnetkitError
from .version import __version__

# The face is lazy (PEP 562): `import resnetkit` costs milliseconds, and torch is imported by the first
# name that needs it (rk.resnet50, rk.ResNet, ...). The command line relies on this: `resnetkit --help`
# never waits for torch. Each public name -> the module that defines it.
_LAZY = {
    **dict.fromkeys(
        ("BasicBlock", "Bottleneck", "FeatureInfo", "ResNet", "ResNetBase", "conv1x1", "conv3x3", "list_models"),
        ".models",
    ),
    **dict.fromkeys(
        ("ResNet18_Weights", "ResNet34_Weights", "ResNet50_Weights", "ResNet101_Weights", "ResNet152_Weights",
         "ResNeXt50_32X4D_Weights", "ResNeXt101_32X8D_Weights", "ResNeXt101_64X4D_Weights",
         "Wide_ResNet50_2_Weights", "Wide_ResNet101_2_Weights", "get_weights", "list_weights"),
        ".weights.catalog",
    ),
    **dict.fromkeys(
        ("create_model", "get_model", "load_weights", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
         "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"),
        ".weights.factory",
    ),
    "load_safetensors": ".weights.io",
    "save_safetensors": ".weights.io",
}  # fmt: skip

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .models import (
        BasicBlock,
        Bottleneck,
        FeatureInfo,
        ResNet,
        ResNetBase,
        conv1x1,
        conv3x3,
        list_models,
    )
    from .weights.catalog import (
        ResNet18_Weights,
        ResNet34_Weights,
        ResNet50_Weights,
        ResNet101_Weights,
        ResNet152_Weights,
        ResNeXt50_32X4D_Weights,
        ResNeXt101_32X8D_Weights,
        ResNeXt101_64X4D_Weights,
        Wide_ResNet50_2_Weights,
        Wide_ResNet101_2_Weights,
        get_weights,
        list_weights,
    )
    from .weights.factory import (
        create_model,
        get_model,
        load_weights,
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
        resnext50_32x4d,
        resnext101_32x8d,
        resnext101_64x4d,
        wide_resnet50_2,
        wide_resnet101_2,
    )
    from .weights.io import load_safetensors, save_safetensors


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resnetkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    _attach_repr()
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))


def explain(model: Any, image: Any = None, input_size: Optional[int] = None, **options: Any) -> str:
    """One self-contained HTML page that walks through ``model`` on a real image: the network as the
    paper draws it, shapes with their arithmetic, feature maps and Grad-CAM per stage, the source that
    builds each part, and parameters, MACs and receptive field per stage.

    Args:
        model: an architecture name (random weights, built with ``options``), a resnetkit model, or
            an exported inference model (shapes from its architecture; no Grad-CAM).
        image: a path or PIL image (default: a sample photo that ships with scikit-learn).
        input_size: the crop side (default: the model's preprocessing).
        **options: build options for an architecture name, e.g. ``replace_stride_with_dilation``.

    Returns:
        The page's HTML text (it needs no network; write it to a .html file and open it).

    Raises:
        InvalidOption: an unknown architecture or option. ImageDecodeError: an unreadable image.

    Examples:
        >>> import resnetkit as rk
        >>> html = rk.explain("resnet18", input_size=64)
        >>> "layer4" in html
        True
    """
    from .inspect.explain import explain as build_page

    return build_page(model, image=image, input_size=input_size, **options)


def _repr_html_(self: Any) -> str:
    """Jupyter's rich display of a model: the stage table (``explain(model)`` gives the full page)."""
    from .inspect.explain import repr_html

    return repr_html(self)


def _attach_repr() -> None:
    """Give every model Jupyter's display. Attached here, not in models/, because the table is drawn by
    the inspect layer, which sits above models; done with the first public name looked up."""
    import sys

    models = sys.modules.get(__name__ + ".models")
    if models is not None and "_repr_html_" not in vars(models.ResNetBase):
        models.ResNetBase._repr_html_ = _repr_html_


__all__ = [
    "__version__",
    "BadFile",
    "BasicBlock",
    "Bottleneck",
    "FeatureInfo",
    "InvalidOption",
    "MissingDependency",
    "ResNet",
    "ResNetBase",
    "ResnetkitError",
    "conv1x1",
    "conv3x3",
    "create_model",
    "explain",
    "get_model",
    "get_weights",
    "list_models",
    "list_weights",
    "load_safetensors",
    "load_weights",
    "save_safetensors",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "ResNet18_Weights",
    "ResNet34_Weights",
    "ResNet50_Weights",
    "ResNet101_Weights",
    "ResNet152_Weights",
    "ResNeXt50_32X4D_Weights",
    "ResNeXt101_32X8D_Weights",
    "ResNeXt101_64X4D_Weights",
    "Wide_ResNet50_2_Weights",
    "Wide_ResNet101_2_Weights",
]
