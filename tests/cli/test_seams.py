"""The seams between commands, one representative per code path (the whole matrix of every artifact
x every reader is tests/scale/test_artifact_matrix.py, in `make test-scale`): every kind of file
`train` and `export` write is read by predict; a checkpoint (.pt) and an export (.onnx) by every
reader; a results table by predict --resume. A refusal counts only where docs/cli.md says that reader
cannot take that file, in one line."""

import pytest

from .. import artifacts
from ..weights.hub_server import StandInHub

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def paths(tmp_path_factory, digits_run):
    root = tmp_path_factory.mktemp("artifacts")
    keep = dict(artifacts.EXPORTS)
    artifacts.EXPORTS.clear()  # the fast ones here: one ONNX file and one .pt2; every format in make test-scale
    artifacts.EXPORTS.update({"model.onnx": ("onnx", "fp32"), "model.pt2": ("pt2", "fp32")})
    try:
        return artifacts.build(root, digits_run)
    finally:
        artifacts.EXPORTS.clear()
        artifacts.EXPORTS.update(keep)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        yield server


@pytest.mark.parametrize("artifact", [*artifacts.PYTORCH_ARTIFACTS, "model.onnx", "model.pt2"])
def test_predict_reads_every_kind_of_file(paths, artifact, tmp_path):
    artifacts.check("predict", artifact, artifacts.read("predict", artifact, paths, tmp_path))


@pytest.mark.parametrize("reader", [r for r in artifacts.READERS if r != "predict"])
@pytest.mark.parametrize("artifact", ["best.pt", "model.onnx"])
def test_every_reader_takes_a_checkpoint_and_an_export(paths, reader, artifact, tmp_path, hub):
    if reader == "bench" and artifact == "best.pt":
        pytest.skip("bench of PyTorch weights exports every format: tests/deploy/test_export_bench.py runs it")
    artifacts.check(reader, artifact, artifacts.read(reader, artifact, paths, tmp_path))


def test_a_results_table_is_resumed_and_refused_as_weights(paths, tmp_path):
    artifacts.table_resume(paths, tmp_path)
