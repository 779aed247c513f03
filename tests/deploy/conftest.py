"""The trained model the deploy tests share: trained once per test session, even when pytest-xdist
runs the files in several worker processes (they share the run through a file lock)."""

import os

import pytest
import torch

import resnetkit as rk
from resnetkit.data.datasets import load_digits


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """resnetkit's digits run at 16 px, 5 epochs (about 10 s; at 3 epochs it is 82-87 % accurate, its
    margins thin, and int8 agreement fell under the bar with one thread)."""
    from filelock import FileLock

    from resnetkit.engine.config import make_config
    from resnetkit.engine.trainer import train

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one folder for all workers
    out = shared / "deploy-digits-run"
    with FileLock(str(shared / "deploy-digits-run.lock")):
        if not (out / "summary.json").is_file():
            cfg = make_config("digits", image_size=16, epochs=5, amp="none", quiet=True, workers=0, out=str(out))
            threads = torch.get_num_threads()
            torch.set_num_threads(2)  # the same model however many workers share the cores
            try:
                train(cfg, log=lambda s: None)
            finally:
                torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def digits_model(digits_run):
    """(model, split): the trained model in eval mode, and the 16 px digits split with ``model_state``
    (to check the model is left untouched) and ``run`` (the run directory)."""
    model = rk.resnet18(weights=str(digits_run / "model.safetensors")).eval()
    split = load_digits(image_size=16)
    split.model_state = [v.clone() for v in model.state_dict().values()]
    split.run = digits_run
    return model, split
