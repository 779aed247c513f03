"""The edge formats: ExecuTorch (.pte, run here by ExecuTorch's own runtime), their int8 paths with
LiteRT's (tests/deploy/test_litert.py has the rest of LiteRT) and Core ML (.mlpackage, checked here
as far as it can be without Apple's runtime, and said so)."""

import json
import shutil

import pytest
import torch

import resnetkit as rk
from resnetkit.deploy import export
from resnetkit.deploy.formats import FORMATS, RUNTIMES, load_exported
from resnetkit.errors import BadFile, DamagedModel, MissingDependency, NotRunnableHere

from ..clirun import cli
from ..damage import flip_middle
from ..imagegen import class_image
from ..models.helpers import randomize_norm_stats

SIZE = 32


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = rk.create_model("test_resnet", num_classes=3).eval()  # timm's tiny ResNet: a small graph to lower
    randomize_norm_stats(model)
    return model, model.card.but(classes=("cat", "dog", "owl"))


def test_executorch_runs_checks_its_hash_and_predicts(small, tmp_path):
    pytest.importorskip("executorch")
    model, card = small
    path = tmp_path / "m.pte"
    report = export(model, path, metadata=card, input_size=SIZE)
    assert report.format == "executorch" and report.max_abs_diff is not None
    runner = load_exported(path)
    assert runner.card.classes == ("cat", "dog", "owl") and runner.card.format == "executorch"
    x = torch.randn(11, 3, SIZE, SIZE)  # above the program's batch bound: run in chunks
    with torch.no_grad():
        want = model(x)
        assert (runner(x) - want).abs().max() <= 1e-4 * max(1.0, float(want.abs().max()))
    # The process's thread setting holds for ExecuTorch's pool too (bench --threads, OMP_NUM_THREADS).
    from executorch.extension.pybindings import portable_lib

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_exported(path)
        assert portable_lib._threadpool_get_thread_count() == 1
    finally:
        torch.set_num_threads(previous)
    # The card is in the program: what a phone app reads with module.execute("resnetkit_card").
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path.read_bytes())
    card_json = json.loads(bytes(program.load_method("resnetkit_card").execute([])[0].tolist()).decode())
    assert card_json["classes"] == ["cat", "dog", "owl"] and len(card_json["weights_sha256"]) == 64
    # predict reads it like any other export.
    class_image(1, 0, size=40).save(tmp_path / "x.png")
    result = cli("predict", tmp_path / "x.png", "--weights", path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["top"][0]["class"] in ("cat", "dog", "owl")
    # Damaged: cut short, or changed in the middle (same size): refused in one line, naming the file.
    (tmp_path / "cut.pte").write_bytes(path.read_bytes()[:4000])
    flip_middle(path, tmp_path / "flipped.pte")
    with pytest.raises(BadFile, match="cut.pte: not a valid ExecuTorch program"):
        load_exported(tmp_path / "cut.pte")
    with pytest.raises(DamagedModel, match="flipped.pte: the program does not match the hash"):
        load_exported(tmp_path / "flipped.pte")
    result = cli("predict", tmp_path / "x.png", "--weights", tmp_path / "flipped.pte")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.sweep  # an int8 program takes a quantization pass and a second lowering: make test-scale
@pytest.mark.parametrize("fmt", ["executorch", "tflite"])
def test_edge_int8_agrees_with_fp32(digits_model, tmp_path, fmt):
    runtime = RUNTIMES[FORMATS[fmt].runtime]
    for package in runtime.packages + runtime.int8_packages:
        pytest.importorskip(package)
    model, split = digits_model
    images = split.val.images[:64]
    path = tmp_path / f"q{FORMATS[fmt].suffix}"
    report = export(model, path, input_size=16, precision="int8", calibration=images)
    assert report.agreement is not None and report.agreement >= 95.0
    runner = load_exported(path)
    assert runner.card.precision == "int8"
    with torch.no_grad():
        agree = (runner(split.val.images).argmax(1) == model(split.val.images).argmax(1)).float().mean()
    assert agree >= 0.95


@pytest.mark.sweep  # one more lowering: make test-scale
def test_a_program_without_resnetkits_card_is_refused_in_one_line(small, tmp_path):
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model, _ = small
    program = torch.export.export(model, (torch.randn(1, 3, SIZE, SIZE),))
    data = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    (tmp_path / "theirs.pte").write_bytes(data)
    with pytest.raises(BadFile, match="without resnetkit's model card"):
        load_exported(tmp_path / "theirs.pte")


def test_core_ml_is_checked_as_far_as_it_can_be_and_says_what_was_not(small, tmp_path):
    pytest.importorskip("coremltools")
    model, card = small
    path = tmp_path / "m.mlpackage"
    report = export(model, path, metadata=card, input_size=SIZE)
    assert report.max_abs_diff is None and report.agreement is None  # never a check that did not run
    assert "predictions NOT checked" in report.note and "card checked" in report.note
    from resnetkit.deploy.runtimes.coreml import read_card, read_spec

    spec = read_spec(path)
    assert [i.name for i in spec.description.input] == ["images"]  # ImageNet's std differs per channel
    assert json.loads(dict(spec.description.metadata.userDefined)["classes"]) == ["cat", "dog", "owl"]
    assert read_card(spec, path).arch == "test_resnet"
    # One std for every channel: normalisation is exact as Core ML image preprocessing.
    gray = card.but(preprocess=card.preprocess.__class__(**{**card.preprocess.to_dict(), "std": (0.5, 0.5, 0.5)}))
    export(model, tmp_path / "img.mlpackage", metadata=gray, input_size=SIZE, precision="fp16")
    spec = read_spec(tmp_path / "img.mlpackage")
    assert [i.name for i in spec.description.input] == ["image"]
    assert read_card(spec, tmp_path / "img.mlpackage").precision == "fp16"
    # An earlier package of the same name is replaced; a folder that is not one is never touched.
    export(model, path, metadata=card, input_size=SIZE)
    (tmp_path / "mine.mlpackage").mkdir()
    (tmp_path / "mine.mlpackage" / "notes.txt").write_text("mine")
    with pytest.raises(BadFile, match="is not a Core ML package"):
        export(model, tmp_path / "mine.mlpackage", metadata=card, input_size=SIZE)
    assert (tmp_path / "mine.mlpackage" / "notes.txt").read_text() == "mine"
    # Here it cannot run: one line saying so, from the API and from predict.
    with pytest.raises(NotRunnableHere, match="Core ML runs on Apple devices only"):
        load_exported(path)
    class_image(1, 0, size=40).save(tmp_path / "x.png")
    result = cli("predict", tmp_path / "x.png", "--weights", path)
    assert result.returncode == 1 and "Apple devices only" in result.stderr
    # weights verify reads what it can, and says what it did not do.
    result = cli("weights", "verify", path)
    assert result.returncode == 0 and "spec and card checked, not run" in result.stdout, result.stderr
    # Damaged packages: named in one line.
    shutil.copytree(path, tmp_path / "no_manifest.mlpackage")
    (tmp_path / "no_manifest.mlpackage" / "Manifest.json").unlink()
    with pytest.raises(BadFile, match="no Manifest.json"):
        load_exported(tmp_path / "no_manifest.mlpackage")
    shutil.copytree(path, tmp_path / "cut.mlpackage")
    spec_file = next((tmp_path / "cut.mlpackage").rglob("model.mlmodel"))
    spec_file.write_bytes(spec_file.read_bytes()[:50])
    with pytest.raises(BadFile, match="cut.mlpackage"):
        load_exported(tmp_path / "cut.mlpackage")


def test_the_table_names_each_formats_extra_and_refuses_what_a_format_does_not_store(small, tmp_path, monkeypatch):
    model, card = small
    result = cli("export", "--weights", "resnet18", "--format", "coreml", "--precision", "int8", "--out", "x.mlpackage")
    assert result.returncode == 1 and "--precision int8 exports to" in result.stderr and "executorch" in result.stderr
    result = cli("export", "--weights", "resnet18", "--format", "executorch", "--out", tmp_path / "x.onnx")
    assert result.returncode == 1 and "must end in .pte" in result.stderr
    from resnetkit.deploy import common

    monkeypatch.setattr(common, "importable", lambda name: False)
    for name, extra in (("executorch", "executorch"), ("coreml", "coreml")):
        out = tmp_path / f"m{FORMATS[name].suffix}"
        with pytest.raises(MissingDependency, match=rf"resnetkit\[{extra}\]"):
            export(model, out, metadata=card, input_size=SIZE)
        assert not out.exists()
