"""Every artifact any command writes (a run, its model.safetensors, best.pt and last.pt, a run stopped
by --max-steps and its only checkpoint, every export format and precision) x every command that
accepts one (predict, eval, export, explain, serve, bench, train --weights/--resume, weights
verify/push), through the CLI with default flags. A refusal counts only where docs/cli.md says that
reader cannot take that file, in one line (tests/artifacts.py). Runs in `make test-scale`."""

import pytest

from .. import artifacts
from ..weights.hub_server import StandInHub

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

ALL = [*artifacts.PYTORCH_ARTIFACTS, *artifacts.EXPORTS]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, digits_run):
    return artifacts.build(tmp_path_factory.mktemp("artifacts"), digits_run)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        yield server


@pytest.mark.parametrize("reader", artifacts.READERS)
@pytest.mark.parametrize("artifact", ALL)
def test_every_artifact_in_every_reader(paths, reader, artifact, tmp_path, hub):
    artifacts.check(reader, artifact, artifacts.read(reader, artifact, paths, tmp_path))


def test_a_pushed_repository_is_read_by_every_reader(paths, tmp_path, hub):
    assert artifacts.read("push", "run", paths, tmp_path).returncode == 0
    paths = dict(paths, pushed="hf-hub:me/pushed")
    for reader in ("predict", "eval", "export", "explain", "serve", "verify"):
        artifacts.check(reader, "pushed", artifacts.read(reader, "pushed", paths, tmp_path))


def test_a_results_table_is_resumed_and_refused_as_weights(paths, tmp_path):
    artifacts.table_resume(paths, tmp_path)
