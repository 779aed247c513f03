import os

import pytest
import torch

# Under pytest-xdist the cores are shared among the workers: one worker's torch must not take them all.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))
# optimize() times each backend for a second by default; tests need its choice, not its precision.
os.environ.setdefault("RESNETKIT_OPTIMIZE_SECONDS", "0.05")


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory):
    """Tests never read or write the user's cache (weights, optimize()'s remembered choices): every
    run starts from the empty one a fresh CI machine has."""
    saved = os.environ.get("RESNETKIT_HOME")
    os.environ["RESNETKIT_HOME"] = str(tmp_path_factory.mktemp("resnetkit-home"))
    yield
    if saved is None:
        os.environ.pop("RESNETKIT_HOME", None)
    else:
        os.environ["RESNETKIT_HOME"] = saved


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


# The longest test files first, so that under pytest-xdist (one file per worker at a time) no
# worker is left running a long file alone at the end (longest-first scheduling).
SLOW_FIRST = [
    "engine/test_train_cli.py",
    "test_docs.py",
    "deploy/test_backends.py",
    "models/test_torchvision_parity.py",
    "deploy/test_export_bench.py",
    "models/test_timm_contract.py",
    "cli/test_hardening.py",
]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0].removeprefix("tests/")
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept
