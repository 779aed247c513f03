"""BN folding, int8, export and bench."""

import json

import pytest
import torch

import resnetkit as rk
from resnetkit.data.datasets import load_digits
from resnetkit.data.transforms import Preprocess
from resnetkit.deploy import calibration_batches, export, fold_batchnorm, optimize, quantize_int8
from resnetkit.deploy.runtimes import ExportedModel, load_exported
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
    return rk.resnet18(weights=str(out / "model.safetensors")).eval(), load_digits(image_size=16)


def test_int8_shapes_and_agreement(digits_model):
    model, split = digits_model
    q = quantize_int8(model, split.train.images[:64].split(16))
    x, y = split.val.images, split.val.targets
    with torch.no_grad():
        fp, iq = model(x), q(x)
    assert iq.shape == fp.shape == (360, 10)
    agree = (fp.argmax(1) == iq.argmax(1)).float().mean().item()
    assert agree >= 0.97, agree
    acc_fp = (fp.argmax(1) == y).float().mean().item()
    acc_q = (iq.argmax(1) == y).float().mean().item()
    assert acc_fp - acc_q <= 0.02
    assert any(".quantized." in type(m).__module__ for m in q.modules())


def test_int8_refuses_without_backend(monkeypatch, digits_model):
    model, split = digits_model
    from resnetkit.deploy import quantize as quantize_module

    monkeypatch.setattr(quantize_module, "supported_engines", lambda: ["qnnpack", "none"])
    with pytest.raises(ResnetkitError, match="x86"):
        quantize_int8(model, split.train.images[:32].split(16))


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


def test_optimize_fp32_and_bf16():
    model = rk.resnet18().eval()
    randomize_norm_stats(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        fast = optimize(model, "fp32", input_size=64)
        assert isinstance(fast, ExportedModel) and fast.format == "onnx"
        assert (fast(x) - ref).abs().max() <= 1e-4
        bf = optimize(model, "bf16")
        assert torch.nn.functional.cosine_similarity(bf(x), ref).min() > 0.99
    with pytest.raises(ResnetkitError, match="precision"):
        optimize(model, "fp8")
    with pytest.raises(ResnetkitError, match="calibration"):
        optimize(model, "int8")


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
        "fused,onnxruntime,int8",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert {r["mode"] for r in res["rows"]} == {"eager", "fused", "onnxruntime", "int8"}
    assert len(res["rows"]) == 8 and all(r["images_per_s"] > 0 for r in res["rows"])
    assert "measured" in res["peak"]["assumptions"] and res["peak"]["gflops"] > 0
    proc = run("bench", "resnet18", "--modes", "fast")
    assert proc.returncode == 2 and "unknown mode" in proc.stderr
