"""Export to each format, and bench (architectures and exported files)."""

import json

import pytest
import torch

import resnetkit as rk
from resnetkit.data.transforms import Preprocess
from resnetkit.deploy import available, export, optimize
from resnetkit.deploy.compare import format_table, runtime_of, table_rows
from resnetkit.deploy.formats import RUNTIMES, installed, load_exported
from resnetkit.errors import ResnetkitError
from resnetkit.weights.io import load_safetensors

from ..clirun import cli
from ..models.helpers import randomize_norm_stats


def test_onnx_export_parity_dynamic_batch(tmp_path):
    model = rk.resnet18(num_classes=7).eval()
    randomize_norm_stats(model)
    report = export(model, tmp_path / "m.onnx", metadata={"arch": "resnet18"}, input_size=64)
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    runner = load_exported(tmp_path / "m.onnx")
    x = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        assert (runner(x) - model(x)).abs().max() <= 1e-4
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["arch"] == "resnet18"


def test_torchscript_round_trip(tmp_path):
    model = rk.resnet50(num_classes=3).eval()
    report = export(model, tmp_path / "m.pt", metadata={"arch": "resnet50"}, input_size=64)
    assert report.max_abs_diff == 0.0 or report.max_abs_diff < 1e-5
    extra = {"resnetkit.json": ""}
    loaded = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["resnetkit.json"])["arch"] == "resnet50"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_safetensors_export_metadata(tmp_path):
    model = rk.resnet18(num_classes=2).eval()
    meta = {"arch": "resnet18", "classes": ["cat", "dog"], "preprocess": Preprocess().to_dict()}
    export(model, tmp_path / "m.safetensors", metadata=meta)
    state, read = load_safetensors(tmp_path / "m.safetensors")
    assert read == meta and state.keys() == model.state_dict().keys()


def test_export_refuses_train_mode_and_bad_extension(tmp_path):
    with pytest.raises(ResnetkitError, match="train mode"):
        export(rk.resnet18(), tmp_path / "m.onnx")
    with pytest.raises(ResnetkitError, match="unknown export format"):
        export(rk.resnet18().eval(), tmp_path / "m.bin")


def test_cli_export_and_bench(tmp_path, digits_model):
    model, _ = digits_model
    path = tmp_path / "w.safetensors"
    rk.save_safetensors(
        model.state_dict(), path, {"arch": "resnet18", "num_classes": 10, "preprocess": Preprocess(16, 16).to_dict()}
    )
    run = cli
    proc = run("export", "--weights", path, "--format", "onnx", "--out", tmp_path / "w.onnx")
    assert proc.returncode == 0 and "max abs diff vs PyTorch" in proc.stdout, proc.stderr
    proc = run("export", "--weights", path, "--format", "onnx", "--out", tmp_path / "w.pt")
    assert proc.returncode == 1 and "must end in .onnx" in proc.stderr
    proc = run(
        "bench",
        "resnet18",
        "--batch-size",
        "1,2",
        "--input-size",
        "32",
        "--modes",
        "fused,onnxruntime,openvino-int8",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert {r["mode"] for r in res["rows"]} == {"eager", "fused", "onnxruntime", "openvino-int8"}
    assert len(res["rows"]) == 8 and all(r["images_per_s"] > 0 for r in res["rows"])
    assert "measured" in res["peak"]["assumptions"] and res["peak"]["gflops"] > 0
    proc = run("bench", "resnet18", "--modes", "fast")
    assert proc.returncode == 2 and "unknown mode" in proc.stderr
    # --formats: the rows of the formats chosen, each at every precision it offers.
    proc = run("bench", "--weights", path, "--formats", "pytorch", "--runs", "1", "--warmup", "0", "--max-images", "32",
               "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {r["format"] for r in json.loads(proc.stdout)["rows"]} == {"pytorch"}
    proc = run("bench", "--weights", path, "--formats", "onnx,tflit")
    assert proc.returncode == 2 and "unknown format(s) 'tflit'" in proc.stderr
    proc = run("bench", "resnet18", "--formats", "onnx")
    assert proc.returncode == 1 and "--formats chooses the files of --weights" in proc.stderr


@pytest.mark.sweep  # every format x precision: make test-scale (tests/cli/test_seams.py benches an export)
def test_bench_weights_every_format_and_nothing_left_behind(tmp_path, monkeypatch, digits_model):
    """bench --weights: one row per (format, precision), measured on the files it exports; the
    temporary files are gone afterwards (bench and optimize used to leave folders behind)."""
    import tempfile

    _, split = digits_model
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    args = ("--runs", "1", "--warmup", "0", "--max-images", "64", "--json")
    proc = cli("bench", "--weights", split.run, *args)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    rows = {(r["format"], r["precision"]): r for r in res["rows"]}

    def runs_here(fmt, precision):
        runtime = RUNTIMES[runtime_of(fmt)]
        if not runtime.runs_here:  # Core ML: listed as skipped, with the reason
            return False
        return runtime.name in available(precision) if runtime.candidate else installed(runtime.name, precision)

    expected = {(f, p) for f, p in table_rows() if f == "pytorch" or runs_here(f, p)}
    assert set(rows) == expected and res["images"] == 64
    assert "does not run on this machine" in res["skipped"]["coreml fp32"]
    assert rows["pytorch", "fp32"]["agreement"] == 100.0 and rows["pytorch", "fp32"]["x_eager"] == 1.0
    for (fmt, precision), row in rows.items():
        assert row["images_per_s"] > 0 and row["p95_ms_bs1"] >= row["p50_ms_bs1"] > 0
        assert row["agreement"] >= 95.0, (fmt, precision)
    if ("onnx", "int8") in rows:
        assert rows["onnx", "int8"]["file_mb"] < 0.4 * rows["onnx", "fp32"]["file_mb"]
    assert list(scratch.iterdir()) == []
    optimize(digits_model[0], "fp32", input_size=16, cache=False)  # its ONNX Runtime candidate is built in memory
    assert list(scratch.iterdir()) == []
    exported = tmp_path / "m.onnx"  # a single exported file: one row, measured as it is
    assert cli("export", "--weights", split.run, "--format", "onnx", "--out", exported).returncode == 0
    one = json.loads(cli("bench", "--weights", exported, *args).stdout)
    assert [(r["format"], r["precision"]) for r in one["rows"]] == [("onnx", "fp32")]
    assert abs(one["rows"][0]["acc1"] - rows["pytorch", "fp32"]["acc1"]) <= 1e-6
    text = format_table(one, "digits")
    assert "| onnx | fp32 |" in text and "roof:" in text and "| - |" in text  # no fp32 reference for a file
    both = cli("bench", "resnet18", "--weights", exported)
    assert both.returncode == 1 and "not both" in both.stderr
