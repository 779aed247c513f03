import os

import pytest
import torch

# Under pytest-xdist the cores are shared among the workers: one worker's torch must not take them all.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))
# optimize() times each backend for a second by default; tests need its choice, not its precision.
os.environ.setdefault("RESNETKIT_OPTIMIZE_SECONDS", "0.05")
# predict and serve run PyTorch unless a test asks for the measured choice (--backend auto, or the env
# var set by the test): building every runtime per command cost a minute of the suite. optimize()
# itself, and predict/serve with auto, are tested on their own.
os.environ.setdefault("RESNETKIT_BACKEND", "pytorch")


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


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The trained digits model several test files share: trained once per test session, even when
    pytest-xdist runs the files in several worker processes (they share the run through a file lock).
    resnetkit's digits run at 16 px, 5 epochs (about 10 s; at 3 epochs it is 82-87 % accurate, its
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
