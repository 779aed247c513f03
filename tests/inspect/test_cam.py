"""Grad-CAM target layer: the last stage, unless the input is too small for its map to say anything."""

import importlib.util

import pytest
import torch

import resnetkit as rk
from resnetkit.inspect.cam import grad_cam, target_layer

# Looked up, not imported: grad-cam takes a second to import, and every pytest-xdist worker collects this.
if importlib.util.find_spec("pytorch_grad_cam") is None:
    pytest.skip("grad-cam is not installed (pip install 'resnetkit[serve]')", allow_module_level=True)


@pytest.mark.parametrize(
    "arch, size, layer",
    [("resnet18", 224, "layer4"), ("resnet18", 128, "layer4"), ("resnet18", 64, "layer3"), ("resnet18", 32, "layer2")],
)
def test_target_layer_keeps_a_spatial_map(arch, size, layer):
    model = getattr(rk, arch)(num_classes=3)
    assert target_layer(model, (size, size)) is model.get_submodule(layer)
    assert target_layer(model) is model.layer4  # no input size: the usual last stage


def test_small_input_map_is_not_constant():
    """At 32 px the last stage is 1x1 and its map one number (a flat overlay); the chosen stage varies."""
    torch.manual_seed(0)
    model = rk.resnet18(num_classes=3).eval()
    images = torch.randn(2, 3, 32, 32)
    maps = grad_cam(model, images)
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    assert all(m.max() - m.min() > 0.1 for m in maps)
    assert not model.training and all(p.grad is None for p in model.parameters())
