"""Each runtime x precision on a trained model, missing runtimes, int8 calibration, optimize()."""

import concurrent.futures
import importlib
import json

import pytest
import torch

import resnetkit as rk
from resnetkit.data.transforms import Preprocess
from resnetkit.deploy import available, calibration_batches, fold_batchnorm, optimize, quantize_int8
from resnetkit.deploy.formats import RUNTIMES
from resnetkit.deploy.optimize import build
from resnetkit.errors import ResnetkitError

from ..imagegen import write_broken_files
from ..sweep import sweep

BACKEND_PRECISIONS = [(r.name, p) for r in RUNTIMES.values() for p in r.precisions]


# One per runtime in make test (ONNX Runtime int8, OpenVINO fp32, PyTorch bf16); every pair in make test-scale.
@pytest.mark.parametrize(
    "backend,precision",
    sweep(BACKEND_PRECISIONS, [("onnxruntime", "int8"), ("openvino", "fp32"), ("pytorch", "bf16")], several=True),
    ids=[f"{b}-{p}" for b, p in BACKEND_PRECISIONS],
)
def test_every_backend_and_precision(backend, precision, digits_model, monkeypatch):
    """Shapes, and agreement with fp32 on the trained digits model (the issue's bars: int8 >= 99 %
    agreement and <= 0.5 points lost, bf16 >= 99.5 %); the runner owns its weights."""
    optimize_module = importlib.import_module("resnetkit.deploy.optimize")  # the package exports the function

    model, split = digits_model
    if backend not in available(precision):
        pytest.skip(f"{precision} on {backend} cannot run here")
    folded = []
    monkeypatch.setattr(optimize_module, "fold_batchnorm", lambda m: folded.append(fold_batchnorm(m)) or folded[-1])
    calibration = split.train.images[:256].split(16) if precision == "int8" else None  # 64 left ~1 % disagreeing
    runner = build(backend, precision, model, 16, calibration)
    x, y = split.val.images, split.val.targets
    with torch.no_grad():
        fp, out = model(x), runner(x)
        assert runner(x[:1]).shape == (1, 10)
        # build() converts a temporary folded copy; a runner that does not hold it must not read its
        # memory afterwards (OpenVINO shares the tensors' memory by default: freed, then garbage).
        if not any(m is folded[0] for m in runner.modules()):
            # Same batch size before and after: oneDNN picks kernels by shape, so a batch of 8 and the
            # first 8 rows of a batch of 360 may differ in the last bit.
            before = runner(x[:8])
            for p in folded[0].parameters():
                p.fill_(7.0)
            assert torch.equal(runner(x[:8]), before), "the runner reads the weights of a copy it does not keep"
    assert out.shape == fp.shape == (360, 10) and out.dtype == torch.float32
    # Called from several threads at once (a server's pool, a user's executor), each caller gets the
    # logits of its own images.
    slices = [x[i * 8 : (i + 1) * 8] for i in range(4)]
    with torch.no_grad(), concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(runner, slices), (out[i * 8 : (i + 1) * 8] for i in range(4))):
                assert torch.allclose(got, want, atol=1e-4 * out.abs().max().item()), "threads mixed up"
    agree = (fp.argmax(1) == out.argmax(1)).float().mean().item()
    acc_drop = (fp.argmax(1) == y).float().mean().item() - (out.argmax(1) == y).float().mean().item()
    if precision == "fp32":
        assert (out - fp).abs().max() <= 1e-3 * fp.abs().max()
    assert agree >= {"fp32": 1.0, "bf16": 0.995, "int8": 0.99}[precision], agree
    assert acc_drop <= 0.005
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), split.model_state))  # untouched


def test_missing_runtime_is_named(monkeypatch, digits_model):
    model, split = digits_model
    from resnetkit.deploy import formats

    monkeypatch.setattr(formats, "installed", lambda backend, precision="fp32": backend == "pytorch")
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


def test_optimize_measures_once_and_remembers(tmp_path, monkeypatch, digits_model):
    model, split = digits_model
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    lines = []
    x = split.val.images[:8]
    with torch.no_grad():
        ref = model(x)
        fast = optimize(model, "fp32", backend="measure", input_size=16, batch_size=4, log=lines.append)
        assert fast.choice.how == "measured" and set(fast.choice.images_per_s) == set(available("fp32"))
        assert fast.choice.backend == max(fast.choice.images_per_s, key=fast.choice.images_per_s.get)
        assert (fast(x) - ref).abs().max() <= 1e-3 * ref.abs().max()
        again = optimize(model, "fp32", input_size=16, batch_size=4, log=lines.append)
        assert again.choice.how.startswith("cached") and again.choice.backend == fast.choice.backend
        bf = optimize(model, "bf16", input_size=16, batch_size=4)
        assert (bf(x).argmax(1) == ref.argmax(1)).all()
        # What follows checks when optimize() measures, not what: two cheap candidates are enough.
        module = importlib.import_module("resnetkit.deploy.optimize")  # the package exports the function
        monkeypatch.setattr(module, "available", lambda precision: ["pytorch", "onnxruntime"])
        other_batch = optimize(model, "fp32", backend="measure", input_size=16, batch_size=2, cache=False)
        assert other_batch.choice.how == "measured"
        # A CPU the measured table does not know: auto measures.
        monkeypatch.setattr(module, "predicted", lambda precision, candidates: None)
        unknown = optimize(model, "fp32", input_size=16, batch_size=3, cache=False)
        assert unknown.choice.how == "measured"
    assert "measuring fp32 on" in lines[0] and "fp32 on" in lines[1] and "(cached" in lines[2]
    cache = json.loads((tmp_path / "home" / "optimize.json").read_text())
    assert len(cache) == 1  # fp32 at batch 4 (bf16 was predicted, not measured); cache=False wrote nothing
    (tmp_path / "home" / "optimize.json").write_text("{not json")  # a damaged cache: decided again
    assert not optimize(model, "fp32", input_size=16, batch_size=4).choice.how.startswith("cached")
    with pytest.raises(ResnetkitError, match="precision"):
        optimize(model, "fp8")
    with pytest.raises(ResnetkitError, match="eval mode"):
        optimize(rk.resnet18())


def test_optimize_predicts_from_the_measured_table(tmp_path, monkeypatch, digits_model):
    """On a CPU the table knows, auto builds one runner (no candidate is quantized to be timed) and
    says why; the runner is kept in the cache of optimized models and the next call loads it."""
    from resnetkit.deploy import formats, runner_cache

    model, split = digits_model
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(formats, "cpu_kind", lambda: "x86_64")
    if "onnxruntime" not in available("fp32"):
        pytest.skip("needs ONNX Runtime (resnetkit[deploy])")
    module = importlib.import_module("resnetkit.deploy.optimize")
    built = []
    leaf = formats.leaf("onnxruntime")
    real_build = leaf.build
    monkeypatch.setattr(leaf, "build", lambda *a: built.append(a) or real_build(*a))
    monkeypatch.setattr(module, "available", lambda precision: ["pytorch", "onnxruntime"])
    x = split.val.images[:8]
    with torch.no_grad():
        first = optimize(model, "fp32", input_size=16, batch_size=4)
        assert first.choice.backend == "onnxruntime" and first.choice.how.startswith("predicted: ")
        assert "--backend measure" in first.choice.how and len(built) == 1
        second = optimize(model, "fp32", input_size=16, batch_size=4)
        assert second.choice.how.endswith("the optimized model from the cache") and len(built) == 1
        assert torch.equal(second(x), first(x))
    (kept,) = runner_cache.entries()
    assert kept.facts["backend"] == "onnxruntime" and kept.size_bytes > 0
    # A damaged entry is never used: removed and rebuilt.
    (kept.folder / "model.onnx").write_bytes(b"not a model")
    with torch.no_grad():
        third = optimize(model, "fp32", input_size=16, batch_size=4)
        assert not third.choice.how.endswith("from the cache") and len(built) == 2
        assert torch.equal(third(x), first(x))
    assert len(runner_cache.entries()) == 1
    # Other weights are another entry; RESNETKIT_NO_MODEL_CACHE=1 neither reads nor writes.
    with torch.no_grad():
        model.fc.bias.add_(1.0)
        try:
            monkeypatch.setenv("RESNETKIT_NO_MODEL_CACHE", "1")
            optimize(model, "fp32", input_size=16, batch_size=4)
            assert len(runner_cache.entries()) == 1 and len(built) == 3
            monkeypatch.delenv("RESNETKIT_NO_MODEL_CACHE")
            optimize(model, "fp32", input_size=16, batch_size=4)
            assert len(runner_cache.entries()) == 2
        finally:
            model.fc.bias.sub_(1.0)
    assert [e.key for e in runner_cache.prune()] and runner_cache.entries() == []


@pytest.mark.parametrize("threads", [1])  # not what the runtimes take by themselves (every core)
def test_runtimes_take_the_thread_count_pytorch_has(threads, digits_model):
    """torch.set_num_threads (bench --threads, OMP_NUM_THREADS) holds for ONNX Runtime and OpenVINO
    too: they used every core whatever was asked, and bench's table said otherwise."""
    model, _ = digits_model
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if "onnxruntime" in available("fp32"):
            session = build("onnxruntime", "fp32", model, 16).runtime
            assert session.get_session_options().intra_op_num_threads == threads
        if "openvino" in available("fp32"):
            runner = build("openvino", "fp32", model, 16)
            assert int(runner.compiled.get_property("INFERENCE_NUM_THREADS")) == threads
    finally:
        torch.set_num_threads(previous)
