"""BN folding, int8, export and bench."""

import json

import pytest
import torch

import resnetkit as rk
from resnetkit.data.datasets import load_digits
from resnetkit.data.transforms import Preprocess
from resnetkit.deploy import available, calibration_batches, export, fold_batchnorm, optimize, quantize_int8
from resnetkit.deploy.backends import SUPPORTED, build
from resnetkit.deploy.compare import ROWS, RUNTIME_OF, format_table
from resnetkit.deploy.runtimes import load_exported
from resnetkit.errors import ResnetkitError
from resnetkit.weights.io import load_safetensors

from ..clirun import cli
from ..imagegen import write_broken_files
from ..models.helpers import randomize_norm_stats


def rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


# One of each structure (the deeper names repeat the same blocks): plain, bottleneck, grouped,
# wide, deep stem + average-pool shortcut, SE, CIFAR option-A.
FOLD_ARCHS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "resnet18d",
    "resnet50c",
    "resnet50d",
    "seresnet50",
    "seresnext50_32x4d",
    "resnet20",
    "resnet56",
]


@pytest.mark.parametrize("arch", FOLD_ARCHS)
def test_fold_exact_for_every_builder(arch):
    torch.manual_seed(0)
    model = rk.get_model(arch).eval()
    randomize_norm_stats(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert rel_err(model(x), folded(x)) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # original untouched
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fold_with_dilation_and_groups():
    model = rk.resnext50_32x4d(replace_stride_with_dilation=[False, True, True]).eval()
    randomize_norm_stats(model)
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(model(x), folded(x)) < 1e-5
    basic = rk.resnet18(replace_stride_with_dilation=[True, True, True]).eval()
    randomize_norm_stats(basic)
    with torch.no_grad():
        assert rel_err(basic(x), fold_batchnorm(basic)(x)) < 1e-5


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small trained model: resnet18 on 16px digits, 3 epochs (a few seconds)."""
    from resnetkit.engine.config import make_config
    from resnetkit.engine.trainer import train

    out = tmp_path_factory.mktemp("run")
    cfg = make_config("digits", image_size=16, epochs=3, amp="none", quiet=True, workers=0, out=str(out))
    train(cfg, log=lambda s: None)
    model = rk.resnet18(weights=str(out / "model.safetensors")).eval()
    split = load_digits(image_size=16)
    split.model_state = [v.clone() for v in model.state_dict().values()]
    split.run = out
    return model, split


BACKEND_PRECISIONS = [(b, p) for p, backends in SUPPORTED.items() for b in backends]


@pytest.mark.parametrize("backend,precision", BACKEND_PRECISIONS, ids=[f"{b}-{p}" for b, p in BACKEND_PRECISIONS])
def test_every_backend_and_precision(backend, precision, digits_model, monkeypatch):
    """Shapes, and agreement with fp32 on the trained digits model (the issue's bars: int8 >= 99 %
    agreement and <= 0.5 points lost, bf16 >= 99.5 %); the runner owns its weights."""
    import resnetkit.deploy.fold as fold_module

    model, split = digits_model
    if backend not in available(precision):
        pytest.skip(f"{precision} on {backend} cannot run here")
    folded = []
    monkeypatch.setattr(fold_module, "fold_batchnorm", lambda m: folded.append(fold_batchnorm(m)) or folded[-1])
    runner = build(backend, precision, model, 16, split.train.images[:64].split(16) if precision == "int8" else None)
    x, y = split.val.images, split.val.targets
    with torch.no_grad():
        fp, out = model(x), runner(x)
        assert runner(x[:1]).shape == (1, 10)
        # build() converts a temporary folded copy; a runner that does not hold it must not read its
        # memory afterwards (OpenVINO shares the tensors' memory by default: freed, then garbage).
        if not any(m is folded[0] for m in runner.modules()):
            for p in folded[0].parameters():
                p.fill_(7.0)
            assert torch.equal(runner(x[:8]), out[:8]), "the runner reads the weights of a copy it does not keep"
    assert out.shape == fp.shape == (360, 10) and out.dtype == torch.float32
    agree = (fp.argmax(1) == out.argmax(1)).float().mean().item()
    acc_drop = (fp.argmax(1) == y).float().mean().item() - (out.argmax(1) == y).float().mean().item()
    if precision == "fp32":
        assert (out - fp).abs().max() <= 1e-3 * fp.abs().max()
    assert agree >= {"fp32": 1.0, "bf16": 0.995, "int8": 0.99}[precision], agree
    assert acc_drop <= 0.005
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), split.model_state))  # untouched


def test_missing_runtime_is_named(monkeypatch, digits_model):
    model, split = digits_model
    from resnetkit.deploy import backends

    monkeypatch.setattr(backends, "installed", lambda backend, precision="fp32": backend == "pytorch")
    with pytest.raises(ImportError, match=r"pip install 'resnetkit\[openvino\]'"):
        build("openvino", "fp32", model, 16)
    with pytest.raises(ImportError, match=r"resnetkit\[deploy\]"):
        quantize_int8(model, split.train.images[:32], backend="onnxruntime")
    with pytest.raises(ImportError, match="int8 on openvino needs"):
        quantize_int8(model, split.train.images[:32])  # auto: no int8 runtime at all
    with pytest.raises(ResnetkitError, match="bf16 is not offered on onnxruntime"):
        build("onnxruntime", "bf16", model, 16)
    assert optimize(model, "fp32", input_size=16).choice.backend == "pytorch"


def test_int8_calibration_refusals(digits_model):
    model, split = digits_model
    with pytest.raises(ResnetkitError, match="at least 32 images, got 16"):
        quantize_int8(model, split.train.images[:16])
    with pytest.raises(ResnetkitError, match=r"\(N, C, H, W\)"):
        quantize_int8(model, split.train.images[0])
    with pytest.raises(ResnetkitError, match="calibration"):
        optimize(model, "int8")


def test_calibration_folder_without_readable_images(tmp_path):
    write_broken_files(tmp_path / "calib")
    with pytest.raises(ResnetkitError, match="at least 32 readable images, got 0"):
        calibration_batches(tmp_path / "calib", Preprocess(36, 32))


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


def test_optimize_measures_once_and_remembers(tmp_path, monkeypatch, digits_model):
    model, split = digits_model
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    lines = []
    x = split.val.images[:8]
    with torch.no_grad():
        ref = model(x)
        fast = optimize(model, "fp32", input_size=16, batch_size=4, log=lines.append)
        assert fast.choice.how == "measured" and set(fast.choice.images_per_s) == set(available("fp32"))
        assert fast.choice.backend == max(fast.choice.images_per_s, key=fast.choice.images_per_s.get)
        assert (fast(x) - ref).abs().max() <= 1e-3 * ref.abs().max()
        again = optimize(model, "fp32", input_size=16, batch_size=4, log=lines.append)
        assert again.choice.how == "cached" and again.choice.backend == fast.choice.backend
        other_batch = optimize(model, "fp32", input_size=16, batch_size=2, cache=False)
        assert other_batch.choice.how == "measured"
        bf = optimize(model, "bf16", input_size=16, batch_size=4)
        assert (bf(x).argmax(1) == ref.argmax(1)).all()
    assert "measuring fp32 on" in lines[0] and "fp32 on" in lines[1] and "(cached" in lines[2]
    cache = json.loads((tmp_path / "home" / "optimize.json").read_text())
    assert len(cache) == 2  # fp32 and bf16 at batch 4; the cache=False call wrote nothing
    (tmp_path / "home" / "optimize.json").write_text("{not json")  # a damaged cache is measured again
    assert optimize(model, "fp32", input_size=16, batch_size=4).choice.how == "measured"
    with pytest.raises(ResnetkitError, match="precision"):
        optimize(model, "fp8")
    with pytest.raises(ResnetkitError, match="eval mode"):
        optimize(rk.resnet18())


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
    expected = {(f, p) for f, p in ROWS if f == "pytorch" or RUNTIME_OF[f] in available(p)}
    assert set(rows) == expected and res["images"] == 64
    assert rows["pytorch", "fp32"]["agreement"] == 100.0 and rows["pytorch", "fp32"]["x_eager"] == 1.0
    for (fmt, precision), row in rows.items():
        assert row["images_per_s"] > 0 and row["p95_ms_bs1"] >= row["p50_ms_bs1"] > 0
        assert row["agreement"] >= 95.0, (fmt, precision)
    if ("onnx", "int8") in rows:
        assert rows["onnx", "int8"]["file_mb"] < 0.4 * rows["onnx", "fp32"]["file_mb"]
    assert list(scratch.iterdir()) == []
    optimize(digits_model[0], "int8", calibration=split.train.images[:32], input_size=16)
    assert list(scratch.iterdir()) == []
    exported = tmp_path / "m_int8.onnx"
    assert cli("export", "--weights", split.run, "--format", "onnx", "--int8", "--out", exported).returncode == 0
    one = json.loads(cli("bench", "--weights", exported, *args).stdout)
    assert [(r["format"], r["precision"]) for r in one["rows"]] == [("onnx", "int8")]
    assert abs(one["rows"][0]["acc1"] - rows["pytorch", "fp32"]["acc1"]) <= 5
    text = format_table(one, "digits")
    assert "| onnx | int8 |" in text and "roof:" in text and "| - |" in text  # no fp32 reference for a file
    both = cli("bench", "resnet18", "--weights", exported)
    assert both.returncode == 1 and "not both" in both.stderr
