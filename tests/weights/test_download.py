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

from ..clirun import cli
from .server import WeightsHost


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_files(cache: Path) -> list:
    """Weight files in the cache (lock files live apart, in .locks/)."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and ".locks" not in p.parts)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    assert cached_files(cache) == [name]
    # Normal permissions (0644 under umask 022), so another user can read the shared cache.
    assert (cache / name).stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert (cache / ".locks" / f"{name}.lock").exists()


def test_progress_bar_shows_on_a_terminal(served, cache, capsys, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    host, name = served
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    rk.resnet18(weights=host.url(name), progress=True)
    shown = terminal.getvalue() + capsys.readouterr().err
    assert name in shown and "100%" in shown and "waiting up to" in shown


def test_tampered_file_rejected_and_not_cached(served, cache, tmp_path):
    host, name = served
    bad_name = "resnet18-deadbeef.pth"
    (host.root / bad_name).write_bytes((host.root / name).read_bytes())
    with pytest.raises(
        ResnetkitError,
        match=r"hash mismatch for http://127\.0\.0\.1:\d+/resnet18-deadbeef\.pth: "
        r"expected sha256 deadbeef\.\.\., got [0-9a-f]{64}",
    ):
        rk.resnet18(weights=host.url(bad_name))
    assert not cached_files(cache)


def test_truncated_transfer_retried_then_reported(served, cache):
    host, name = served
    trunc = name.replace("resnet18", "resnet18t")
    (host.root / trunc).write_bytes((host.root / name).read_bytes())
    host.modes[trunc] = "truncate"
    with pytest.raises(ResnetkitError, match="truncated transfer"):
        rk.resnet18(weights=host.url(trunc))
    assert host.requests[trunc] == dl.RETRIES + 1
    assert not cached_files(cache)


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


@pytest.mark.sweep  # several real processes: make test-scale
def test_parallel_processes_share_one_transfer(served, cache):
    host, name = served
    shared = name.replace("resnet18", "resnet18c")
    (host.root / shared).write_bytes((host.root / name).read_bytes())
    code = f"import resnetkit as rk; rk.resnet18(weights={host.url(shared)!r}, progress=False); print('ok')"
    env = dict(os.environ, RESNETKIT_HOME=str(cache), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(3)
    ]
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


def test_mirror_and_cli_download_and_verify(served, cache, monkeypatch):
    host, name = served
    entry = get_weights("resnet18.IMAGENET1K_V1")
    # Serve our test file under the catalog's name: the hash cannot match, so the CLI refuses it.
    (host.root / entry.file_name).write_bytes((host.root / name).read_bytes())
    monkeypatch.setenv("RESNETKIT_WEIGHTS_MIRROR", f"http://127.0.0.1:{host.port}/")
    proc = cli("weights", "download", entry.name, "--no-progress")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "hash mismatch" in proc.stderr and "f37072fd" in proc.stderr
    assert not (cache / entry.file_name).exists()
    # A bad file put in the cache by hand is caught by verify.
    (cache / entry.file_name).write_bytes(b"not the weights")
    proc = cli("weights", "verify")
    assert proc.returncode == 1 and "BAD" in proc.stdout
    proc = cli("weights", "list", "--json")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    same_file = [e for e in rk.list_weights() if e.file_name == entry.file_name]  # timm's resnet18.tv_in1k too
    assert len(rows) == len(rk.list_weights()) and [r["cached"] is not None for r in rows].count(True) == len(same_file)


def test_same_file_name_at_two_urls_are_two_cache_entries(cache, tmp_path):
    """The cache key of a URL without a hash prefix is derived from the whole URL."""
    root = tmp_path / "host"
    for version, seed in (("v1", 1), ("v2", 2)):
        (root / version).mkdir(parents=True)
        torch.manual_seed(seed)
        torch.save(rk.resnet18(num_classes=3).state_dict(), root / version / "model.pth")
    host = WeightsHost(root)
    with host.running():
        a = rk.resnet18(weights=host.url("v1/model.pth"), progress=False)
        b = rk.resnet18(weights=host.url("v2/model.pth"), progress=False)
    want = torch.load(root / "v2" / "model.pth", weights_only=True)["conv1.weight"]
    assert torch.equal(b.conv1.weight, want) and not torch.equal(a.conv1.weight, want)
    files = cached_files(cache)
    assert len(files) == 2 and all(f.startswith("by-url/") and f.endswith("-model.pth") for f in files)


@pytest.mark.parametrize("mode", ["html", "text"])
def test_a_page_instead_of_weights_is_never_cached(served, cache, mode):
    host, name = served
    odd = f"page-{mode}.pth"
    (host.root / odd).write_bytes((host.root / name).read_bytes())
    host.modes[odd] = mode
    with pytest.raises(ResnetkitError, match="did not give a weights file.*nothing was cached"):
        rk.resnet18(weights=host.url(odd), progress=False)
    assert not cached_files(cache)
    host.modes[odd] = "ok"  # the server is fixed: the next try downloads and works
    rk.resnet18(weights=host.url(odd), progress=False)
    assert len(cached_files(cache)) == 1


def test_http_error_bodies_are_never_cached(served, cache):
    host, name = served
    with pytest.raises(ResnetkitError, match="HTTP 404.*nothing was cached"):
        rk.resnet18(weights=host.url("missing.pth"), progress=False)
    assert not cached_files(cache)


def test_a_host_that_never_answers_times_out_with_a_message(cache, monkeypatch):
    import socket
    import time

    monkeypatch.setenv("RESNETKIT_DOWNLOAD_TIMEOUT", "0.3")
    with socket.socket() as srv:  # accepts connections (the kernel's backlog) and never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/model.pth"
        start = time.monotonic()
        with pytest.raises(ResnetkitError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.3 s"):
            rk.resnet18(weights=url, progress=False)
        assert time.monotonic() - start < 10
    assert not cached_files(cache)


def test_saved_safetensors_have_normal_permissions(tmp_path):
    rk.save_safetensors(rk.resnet18(num_classes=2).state_dict(), tmp_path / "w.safetensors", {"arch": "resnet18"})
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_a_damaged_cached_file_is_replaced(served, cache):
    host, name = served
    rk.resnet18(weights=host.url(name), progress=False)
    (cache / name).write_bytes(b"damaged on disk")
    with pytest.warns(UserWarning, match="cannot be read.*removed and is fetched again"):
        model = rk.resnet18(weights=host.url(name), progress=False)
    want = torch.load(host.root / name, weights_only=True)["conv1.weight"]
    assert torch.equal(model.conv1.weight, want) and sha(cache / name) == sha(host.root / name)
