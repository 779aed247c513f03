"""The trained model the deploy tests share (``digits_run``, in tests/conftest.py), loaded."""

import pytest

import resnetkit as rk
from resnetkit.data.datasets import load_digits


@pytest.fixture(scope="module")
def digits_model(digits_run):
    """(model, split): the trained model in eval mode, and the 16 px digits split with ``model_state``
    (to check the model is left untouched) and ``run`` (the run directory)."""
    model = rk.resnet18(weights=str(digits_run / "model.safetensors")).eval()
    split = load_digits(image_size=16)
    split.model_state = [v.clone() for v in model.state_dict().values()]
    split.run = digits_run
    return model, split
