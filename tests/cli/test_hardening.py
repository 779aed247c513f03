"""Every user-caused failure is one line naming the problem and the fix: unusable paths, bad
options, exported files given as weights, extreme images. In-process through resnetkit.cli.main."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import resnetkit as rk

from ..clirun import cli
from ..damage import flip_middle
from ..imagegen import class_image, write_small_weights


def one_line_error(result, code=1):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A resnet18 with 3 classes at 32 px, saved as a run would save it."""
    return write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors")


@pytest.fixture
def unwritable(tmp_path):
    """A directory this process cannot write into (root ignores permission bits: /sys refuses it)."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        yield d
        d.chmod(0o700)
        return
    probe = Path("/sys/resnetkit-probe")
    try:
        probe.mkdir()
    except OSError:
        yield Path("/sys")
        return
    probe.rmdir()
    pytest.skip("no unwritable directory available")


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return f


def test_outputs_to_unusable_paths(small_weights, tmp_path, unwritable, a_file):
    w = ["--weights", small_weights]
    image = tmp_path / "x.png"
    class_image(0, 0, size=40).save(image)
    a_dir = tmp_path / "dir.onnx"
    a_dir.mkdir()
    cases = [
        (["export", *w, "--format", "onnx", "--out", a_file / "m.onnx"], "is a file"),
        (["export", *w, "--format", "onnx", "--out", unwritable / "m.onnx"], "writ"),
        (["export", *w, "--format", "onnx", "--out", a_dir], "directory"),
        (["weights", "convert", small_weights, unwritable / "c.safetensors"], "writ"),
        (["weights", "convert", small_weights, a_file / "c.safetensors"], "is a file"),
        (["eval", *w, "--confusion", unwritable / "c.png"], "writ"),
        (["eval", *w, "--confusion", a_file / "c.png"], "is a file"),
        (["summary", "resnet18", "--diagram", unwritable / "d.svg"], "writ"),
        (["summary", "resnet18", "--diagram", a_file / "d.png"], "is a file"),
        (["train", "--image-size", "16", "--out", unwritable / "run"], "run directory"),
        (["predict", image, *w, "--cam", unwritable / "cams"], "writ"),
        (["predict", image, *w, "--cam", a_file], "is a file"),
        (["predict", image, *w, "--cam", a_file / "cams"], "is a file"),
    ]
    for args, words in cases:
        line = one_line_error(cli(*args))
        assert words in line, (args, line)
    assert not (unwritable / "cams").exists()


def test_predict_cam_writes_one_overlay_per_image(small_weights, tmp_path):
    """--cam DIR: one Grad-CAM overlay PNG per image, even for a folder: the region the model saw, at
    the image's resolution, at least 256 px on the short side (the model's input is 32 px)."""
    pytest.importorskip("pytorch_grad_cam")
    from PIL import Image

    images = tmp_path / "in"
    images.mkdir()
    for i in range(2):
        class_image(i, i, size=40 if i == 0 else 600).save(images / f"{i}.png")
    result = cli("predict", images, "--weights", small_weights, "--cam", tmp_path / "cams" / "new", "--topk", "1")
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "cams" / "new").iterdir())
    assert [p.name for p in written] == ["0_cam.png", "1_cam.png"] and result.stdout.count("Grad-CAM: ") == 2
    # 40 px: crop 32/36 of it, blown up to 256; 600 px: the crop at the image's own pixels (32/36 x 600).
    assert [Image.open(p).size for p in written] == [(256, 256), (533, 533)]
    assert all(Image.open(p).mode == "RGB" for p in written)


@pytest.mark.parametrize(
    "args, words, code",
    [
        (["summary", "resnet56", "--groups", "2"], "does not take groups", 1),
        (["summary", "resnet56", "--dilation", "0,1,1"], "replace_stride_with_dilation", 1),
        (["summary", "resnet18", "--groups", "32"], "BasicBlock", 1),
        (["bench", "resnet18", "--input-size", "0"], ">= 32", 2),
        (["bench", "resnet18", "--input-size", "-3"], ">= 32", 2),
        (["bench", "resnet18", "--threads", "-4"], ">= 1", 2),
        (["bench", "resnet18", "--threads", "0"], ">= 1", 2),
        (["bench", "resnet18", "--warmup", "-1"], ">= 0", 2),
        (["bench", "resnet18", "--runs", "0"], ">= 1", 2),
        (["bench", "resnet99"], "unknown model", 1),
        (["predict", "x.png", "--weights", "w", "--topk", "0"], ">= 1", 2),
        (["export", "--weights", "w", "--format", "pt2", "--int8", "--out", "x.pt2"], "pt2 stores fp32", 1),
    ],
)
def test_bad_options_one_line(args, words, code):
    result = cli(*args)
    assert result.returncode == code and "Traceback" not in result.stderr
    assert words in result.stderr.strip().splitlines()[-1], result.stderr


def test_bench_library_refuses_bad_values():
    from resnetkit.deploy.bench import benchmark

    for kwargs in (dict(threads=0), dict(input_size=0), dict(warmup=-1), dict(batch_sizes=[0])):
        with pytest.raises(ValueError):
            benchmark("resnet18", **kwargs)


def probabilities(result) -> dict:
    assert result.returncode == 0, result.stderr
    return {t["class"]: t["prob"] for t in json.loads(result.stdout)["top"]}


def test_exported_artifacts_run_everywhere(small_weights, tmp_path, monkeypatch):
    """Each export format runs in predict and eval on its runtime, with the metadata of the export."""
    monkeypatch.chdir(tmp_path)  # eval of a bare file writes eval.json and confusion.png into ./
    for name in ("d.png", "e.png"):
        class_image(1, 2, size=40).save(tmp_path / name)
    want = json.loads(cli("predict", tmp_path / "d.png", "--weights", small_weights, "--json").stdout)["top"]
    for fmt, out in (("onnx", "m.onnx"), ("pt2", "m.pt2"), ("openvino", "m_openvino"), ("torchscript", "m.pt")):
        exported = cli("export", "--weights", small_weights, "--format", fmt, "--out", tmp_path / out)
        assert exported.returncode == 0 and "max abs diff vs PyTorch" in exported.stdout, exported.stderr
        got = json.loads(cli("predict", tmp_path / "d.png", "--weights", tmp_path / out, "--json").stdout)["top"]
        assert [t["class"] for t in got] == [t["class"] for t in want], fmt
        assert all(abs(a["prob"] - b["prob"]) < 1e-4 for a, b in zip(got, want)), fmt
    for fmt, precision in (("pt2", "int8"), ("onnx", "bf16"), ("safetensors", "bf16")):
        out = tmp_path / f"x.{fmt}"
        assert "precision" in one_line_error(
            cli("export", "--weights", small_weights, "--format", fmt, "--precision", precision, "--out", out)
        )
    result = cli("eval", "--weights", tmp_path / "m.onnx", "--data", _eval_folder(tmp_path), "--json", "-j", "0")
    assert result.returncode == 0 and json.loads(result.stdout.splitlines()[-1])["images"] == 3
    assert "folder" in one_line_error(
        cli("export", "--weights", small_weights, "--format", "openvino", "--out", tmp_path / "x.onnx")
    )
    # Damaged artifacts: one line naming the file, what is wrong and the fix; nothing else printed.
    (tmp_path / "cut.onnx").write_bytes((tmp_path / "m.onnx").read_bytes()[:5000])
    (tmp_path / "cut.pt2").write_bytes((tmp_path / "m.pt2").read_bytes()[:3000])
    shutil.copytree(tmp_path / "m_openvino", tmp_path / "no_bin")
    (tmp_path / "no_bin" / "model.bin").unlink()
    shutil.copytree(tmp_path / "m_openvino", tmp_path / "cut_bin")
    with open(tmp_path / "cut_bin" / "model.bin", "r+b") as f:
        f.truncate(1000)
    # Damaged in the middle, same size: they would read and run, and predict with confidence.
    flip_middle(tmp_path / "m.onnx", tmp_path / "flipped.onnx")
    shutil.copytree(tmp_path / "m_openvino", tmp_path / "flipped_bin")
    flip_middle(tmp_path / "m_openvino" / "model.bin", tmp_path / "flipped_bin" / "model.bin")
    flip_middle(tmp_path / "m.pt2", tmp_path / "flipped.pt2", member="data/")
    for name, words in (
        ("cut.onnx", "not a valid ONNX model"),
        ("cut.pt2", "truncated, or not a .pt2"),
        ("no_bin", "without its weights file model.bin"),
        ("cut_bin", "Incorrect weights in bin file"),
        ("flipped.onnx", "do not match the hash recorded at export"),
        ("flipped_bin", "do not match the hash recorded at export"),
        ("flipped.pt2", "fails its CRC check"),
    ):
        line = one_line_error(cli("predict", tmp_path / "d.png", "--weights", tmp_path / name))
        assert words in line and name in line and "again" in line, line


@pytest.mark.sweep  # NNCF int8 takes seconds: make test-scale (ONNX Runtime int8 runs in make test)
def test_an_openvino_int8_export_predicts_the_probabilities_of_its_weights(small_weights, tmp_path):
    class_image(1, 2, size=40).save(tmp_path / "d.png")
    want_probs = probabilities(cli("predict", tmp_path / "d.png", "--weights", small_weights, "--json", "--topk", "3"))
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i in range(32):
        class_image(i % 3, i, size=40).save(calibration / f"{i}.png")
    for fmt, precision, out in (("openvino", "int8", "q_ov"),):
        flags = ("--calibration", calibration) if precision == "int8" else ()
        exported = cli(
            "export",
            "--weights",
            small_weights,
            "--format",
            fmt,
            "--precision",
            precision,
            "--out",
            tmp_path / out,
            *flags,
        )
        assert exported.returncode == 0 and f"({fmt}, {precision}); top-1 agreement" in exported.stdout, exported.stderr
        # A random 3-class net is near-uniform (top-1 leads by ~0.03), so reduced precision may swap a
        # near-tie: compare every class's probability, closely enough to catch a wrong class order.
        got_probs = probabilities(
            cli("predict", tmp_path / "d.png", "--weights", tmp_path / out, "--json", "--topk", "3")
        )
        assert got_probs.keys() == want_probs.keys(), (fmt, precision)
        worst = max(abs(got_probs[c] - want_probs[c]) for c in want_probs)
        assert worst < 0.01, (fmt, precision, got_probs, want_probs)


def _eval_folder(tmp_path):
    root = tmp_path / "evaldata"
    for i, name in enumerate(["a", "b", "c"]):
        (root / name).mkdir(parents=True)
        class_image(i, 0, size=40).save(root / name / "0.png")
    return root


def test_a_missing_runtime_is_named(small_weights, tmp_path, monkeypatch):
    import builtins

    assert cli("export", "--weights", small_weights, "--format", "onnx", "--out", tmp_path / "m.onnx").returncode == 0
    class_image(0, 0).save(tmp_path / "a.png")
    real_import = builtins.__import__

    def no_runtimes(name, *args, **kwargs):
        if name.split(".")[0] in ("onnxruntime", "openvino"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_runtimes)
    line = one_line_error(cli("predict", tmp_path / "a.png", "--weights", tmp_path / "m.onnx"))
    assert "pip install 'resnetkit[deploy]'" in line
    line = one_line_error(cli("export", "--weights", small_weights, "--format", "openvino", "--out", tmp_path / "ov"))
    assert "pip install 'resnetkit[openvino]'" in line


def test_messages_name_the_real_problem(tmp_path, small_weights):
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    assert "named pipe" in one_line_error(cli("eval", "--weights", fifo))
    loop = tmp_path / "loop.pth"
    os.symlink(loop, loop)
    assert "symbolic link loop" in one_line_error(cli("eval", "--weights", loop))
    dangling = tmp_path / "dangling.pth"
    os.symlink(tmp_path / "nowhere", dangling)
    assert "broken symbolic link" in one_line_error(cli("eval", "--weights", dangling))
    html = tmp_path / "page.pth"
    html.write_text("<!DOCTYPE html><html>login</html>")
    assert "HTML page" in one_line_error(cli("eval", "--weights", html))


def test_predict_checks_inputs_before_fetching_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "cache"))
    line = one_line_error(cli("predict", tmp_path / "nope.jpg", "--weights", "http://127.0.0.1:9/w.pth"))
    assert "none of the inputs exist" in line
    assert not (tmp_path / "cache").exists()


def test_extreme_aspect_ratio_images_are_refused_per_file(tmp_path, small_weights):
    Image.new("RGB", (10000, 1)).save(tmp_path / "strip.png")
    class_image(0, 0, size=40).save(tmp_path / "ok.png")
    result = cli("predict", tmp_path, "--weights", small_weights, "--json")
    assert result.returncode == 1
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert "extreme aspect ratio" in rows["strip.png"]["error"] and "top" in rows["ok.png"]


def test_extreme_aspect_ratio_in_training_and_calibration(tmp_path):
    from resnetkit.data.decode import ImageDecodeError, load_image
    from resnetkit.data.transforms import Preprocess
    from resnetkit.deploy.calibration import calibration_batches

    Image.new("RGB", (1, 6000)).save(tmp_path / "tall.png")
    with pytest.raises(ImageDecodeError, match="extreme aspect ratio"):
        load_image(tmp_path / "tall.png", short_side=224)
    assert load_image(tmp_path / "tall.png").size == (1, 6000)  # no resize planned: allowed
    with pytest.raises(rk.ResnetkitError, match="0 from"):
        calibration_batches(tmp_path, Preprocess())


def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch):
    from resnetkit.cli import models as models_cmd

    monkeypatch.setattr(models_cmd, "describe", lambda name: (_ for _ in ()).throw(RuntimeError("internal")))
    line = one_line_error(cli("models"))
    assert "unexpected error: RuntimeError: internal" in line and "--debug" in line
    with pytest.raises(RuntimeError):
        cli("models", "--debug")


def test_input_errors_name_the_layout_and_dtype():
    model = rk.resnet18().eval()
    with pytest.raises(ValueError, match="channels-last"):
        model(torch.zeros(1, 224, 224, 3))
    with pytest.raises(ValueError, match="torch.float64 but the model's weights are torch.float32"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.float64))
    with pytest.raises(ValueError, match="floating-point input.*torch.uint8"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_cli_exit_code_and_version_in_a_real_process():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("resnetkit ")
    proc = subprocess.run(
        [sys.executable, "-m", "resnetkit", "eval", "--weights", "/nonexistent/w.pth"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no such file" in proc.stderr


@pytest.mark.parametrize(
    "source, words",
    [
        ("", "empty"),
        ("resnet50", "architecture name, not weights; e.g. resnet50.IMAGENET1K_V1"),
        ("seresnetaa50d", "no published weights"),
        ("resnet50d", "architecture name, not weights; e.g. resnet50d.a1_in1k"),
        ("IMAGENET1K_V2", "is a tag: name the architecture too, e.g. resnet50.IMAGENET1K_V2"),
    ],
)
def test_weights_names_that_are_not_weights(tmp_path, source, words):
    class_image(0, 0).save(tmp_path / "a.png")
    assert words in one_line_error(cli("predict", tmp_path / "a.png", "--weights", source))


def test_cifar_resnets_train_from_the_cli(tmp_path):
    result = cli(
        "train",
        "--arch",
        "resnet20",
        "--zero-init-residual",
        "--max-steps",
        "2",
        "--quiet",
        "--workers",
        "0",
        "--out",
        tmp_path / "run",
    )
    assert result.returncode == 0, result.stderr
    model = rk.get_model("resnet20", zero_init_residual=True)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in model.modules() if isinstance(b, rk.BasicBlock))


def test_device_flag(small_weights, tmp_path):
    class_image(0, 0).save(tmp_path / "a.png")
    assert cli("predict", tmp_path / "a.png", "--weights", small_weights, "--device", "cpu").returncode == 0
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in one_line_error(
            cli("predict", tmp_path / "a.png", "--weights", small_weights, "--device", "cuda")
        )
    else:  # pragma: no cover - GPU machines
        assert cli("predict", tmp_path / "a.png", "--weights", small_weights, "--device", "cuda").returncode == 0
