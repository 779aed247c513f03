import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# optimize() times each backend for a second by default; tests need its choice, not its precision.
os.environ.setdefault("RESNETKIT_OPTIMIZE_SECONDS", "0.05")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
