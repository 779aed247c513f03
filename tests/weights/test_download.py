"""Downloads and the cache, against a loopback HTTP server (no internet)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resnetkit as rk
from resnetkit.errors import ResnetkitError
from resnetkit.weights import download as dl
from resnetkit.weights.catalog import get_weights

from .server import WeightsHost


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("RESNETKIT_HOME", str(home))
    monkeypatch.delenv("RESNETKIT_OFFLINE", raising=False)
    monkeypatch.setattr(dl, "BACKOFF_S", 0.01)
    return home


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A resnet18 state_dict under a torch-hub style name carrying its own sha256 prefix."""
    root = tmp_path_factory.mktemp("host")
    torch.manual_seed(0)
    tmp = root / "tmp.pth"
    torch.save(rk.resnet18().state_dict(), tmp)
    name = f"resnet18-{sha(tmp)[:8]}.pth"
    tmp.rename(root / name)
    host = WeightsHost(root)
    with host.running():
        yield host, name


def test_url_download_and_cache(served, cache):
    host, name = served
    model = rk.resnet18(weights=host.url(name), progress=False)
    assert (cache / name).is_file()
    before = host.requests.get(name, 0)
    rk.resnet18(weights=host.url(name), progress=False)  # second use: from the cache
    assert host.requests.get(name, 0) == before
    assert torch.equal(model.conv1.weight, torch.load(cache / name, weights_only=True)["conv1.weight"])
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [name]


def test_progress_bar_shows(served, cache):
    host, name = served
    code = f"import resnetkit as rk; rk.resnet18(weights={host.url(name)!r}, progress=True)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, RESNETKIT_HOME=str(cache)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stderr and "100%" in proc.stderr


def test_tampered_file_rejected_and_not_cached(served, cache, tmp_path):
    host, name = served
    bad_name = "resnet18-deadbeef.pth"
    (host.root / bad_name).write_bytes((host.root / name).read_bytes())
    with pytest.raises(ResnetkitError, match=r"hash mismatch for http://127\.0\.0\.1:\d+/resnet18-deadbeef\.pth: "
                       r"expected sha256 deadbeef\.\.\., got [0-9a-f]{64}"):
        rk.resnet18(weights=host.url(bad_name))
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]


def test_truncated_transfer_retried_then_reported(served, cache):
    host, name = served
    trunc = name.replace("resnet18", "resnet18t")
    (host.root / trunc).write_bytes((host.root / name).read_bytes())
    host.modes[trunc] = "truncate"
    with pytest.raises(ResnetkitError, match="truncated transfer"):
        rk.resnet18(weights=host.url(trunc))
    assert host.requests[trunc] == dl.RETRIES + 1
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]


def test_transient_errors_retried(served, cache):
    host, name = served
    flaky = name.replace("resnet18", "resnet18f")
    (host.root / flaky).write_bytes((host.root / name).read_bytes())
    host.modes[flaky] = "flaky:2"
    rk.resnet18(weights=host.url(flaky))
    assert host.requests[flaky] == 3


def test_http_404_not_retried(served, cache):
    host, _ = served
    with pytest.raises(ResnetkitError, match="HTTP 404"):
        rk.resnet18(weights=host.url("resnet18-00000000.pth"))
    assert host.requests["resnet18-00000000.pth"] == 1


def test_four_processes_one_transfer(served, cache):
    host, name = served
    shared = name.replace("resnet18", "resnet18c")
    (host.root / shared).write_bytes((host.root / name).read_bytes())
    code = f"import resnetkit as rk; rk.resnet18(weights={host.url(shared)!r}, progress=False); print('ok')"
    env = dict(os.environ, RESNETKIT_HOME=str(cache), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert all(o[0].strip() == "ok" for o in outs)
    assert host.requests[shared] == 1


def test_offline_env_names_url_and_cache_path(cache, monkeypatch):
    monkeypatch.setenv("RESNETKIT_OFFLINE", "1")
    entry = get_weights("resnet50.IMAGENET1K_V2")
    with pytest.raises(ResnetkitError) as err:
        rk.resnet50(weights="IMAGENET1K_V2")
    msg = str(err.value)
    assert entry.url in msg and str(cache / "resnet50-11ad3fa6.pth") in msg and "\n" not in msg


def test_unreachable_host_is_an_offline_error(cache):
    with pytest.raises(ResnetkitError, match=r"cannot download http://127\.0\.0\.1:9/x-1234abcd\.pth .*place the file"):
        rk.resnet18(weights="http://127.0.0.1:9/x-1234abcd.pth")


def test_torch_hub_cache_reused(served, tmp_path, monkeypatch):
    """Weights torchvision already downloaded (same file names, torch hub dir) are used as is."""
    host, name = served
    monkeypatch.delenv("RESNETKIT_HOME", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESNETKIT_OFFLINE", "1")  # any download attempt would fail
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    entry = get_weights("resnet18.IMAGENET1K_V1")
    (hub / entry.file_name).write_bytes((host.root / name).read_bytes())
    model = rk.resnet18(weights="IMAGENET1K_V1")
    assert model.fc.out_features == 1000
    # The first release's file name is recognised too.
    (hub / entry.file_name).rename(hub / "resnet18-5c106cde.pth")
    assert entry.cached_path() == hub / "resnet18-5c106cde.pth"
    with pytest.warns(FutureWarning, match="pretrained=True is deprecated"):
        legacy = rk.resnet18(pretrained=True)
    assert torch.equal(legacy.fc.weight, model.fc.weight)


def test_mirror_and_cli_download_and_verify(served, cache):
    host, name = served
    entry = get_weights("resnet18.IMAGENET1K_V1")
    # Serve our test file under the catalog's name: the hash cannot match, so the CLI refuses it.
    (host.root / entry.file_name).write_bytes((host.root / name).read_bytes())
    env = dict(os.environ, RESNETKIT_HOME=str(cache), RESNETKIT_WEIGHTS_MIRROR=f"http://127.0.0.1:{host.port}/")
    proc = subprocess.run([sys.executable, "-m", "resnetkit", "weights", "download", entry.name, "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "hash mismatch" in proc.stderr and "f37072fd" in proc.stderr
    assert not (cache / entry.file_name).exists()
    # A bad file put in the cache by hand is caught by verify.
    (cache / entry.file_name).write_bytes(b"not the weights")
    proc = subprocess.run([sys.executable, "-m", "resnetkit", "weights", "verify"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1 and "BAD" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "resnetkit", "weights", "list", "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 18 and sum(r["cached"] is not None for r in rows) == 1
