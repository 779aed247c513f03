"""The shipped shape signatures (weights/data/shape_signatures.json) that identify a file's architecture
without building models: they match what the builders make, and identification uses them."""

import pytest
import torch

import resnetkit as rk
from resnetkit.models.table import ARCHITECTURES
from resnetkit.weights.loading import builder_signature, identify_architecture, known_signatures

from ..sweep import sweep

FIX = "the builders changed: run .venv/bin/python scripts/make_shape_signatures.py"


def test_every_built_in_name_has_a_signature():
    assert set(known_signatures()) == set(ARCHITECTURES), FIX


@pytest.mark.parametrize(
    "name", sweep(sorted(ARCHITECTURES), keep=["resnet50", "seresnext26t_32x4d", "resnetv2_50x1_bit", "resnet20"])
)
def test_signature_matches_the_builder(name):
    assert known_signatures()[name] == builder_signature(name), FIX


def test_identification_builds_no_model(monkeypatch):
    """A torchvision file and a 1-channel one are named from the table alone (building a model on the
    meta device imports torch's compiler stack: a second of a one-image job)."""
    from resnetkit.weights import loading

    state = rk.create_model("resnet26d", in_chans=1, num_classes=7).state_dict()
    monkeypatch.setattr(loading, "_builder_shapes", lambda *a: pytest.fail("built a model to identify a file"))
    assert identify_architecture(state) == "resnet26d"
    assert identify_architecture({"module." + k: v for k, v in state.items()}) == "resnet26d"
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    assert identify_architecture(state) is None
