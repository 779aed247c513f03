"""resnetkit: the torchvision-exact ResNet family and everything around it."""

from .errors import ResnetkitError
from .models import BasicBlock, Bottleneck, FrozenBatchNorm2d, ResNet, conv1x1, conv3x3, list_models
from .weights.builders import (
    get_model,
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
from .weights.io import load_safetensors, save_safetensors
from .weights.loading import load_weights as _load_state

__version__ = "0.1.0"


def load_weights(model, src, head: str = "keep", progress: bool = True):
    """Load weights into ``model`` from a state_dict, a file (.pt/.pth/.safetensors), a training run
    directory or a catalog name. ``head="reset"`` keeps the model's own classifier when the class
    count differs; a mismatch otherwise raises ResnetkitError with a diagnosis."""
    if isinstance(src, dict):
        return _load_state(model, src, head=head, source="the state_dict")
    from .weights.resolve import read_source

    loaded = read_source(str(src), progress=progress)
    return _load_state(model, loaded.state, head=head, source=loaded.source)


__all__ = [
    "BasicBlock",
    "Bottleneck",
    "FrozenBatchNorm2d",
    "ResNet",
    "ResnetkitError",
    "conv1x1",
    "conv3x3",
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
