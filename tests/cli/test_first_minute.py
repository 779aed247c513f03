"""The first minute: a command line that answers without loading torch, a small job run on PyTorch at
once, and `resnetkit cache` over the optimized models kept for the next job."""

import json
import subprocess
import sys
import time

import pytest
import torch
import torchvision.models as tvm

from resnetkit.deploy import runner_cache

from ..clirun import cli
from ..imagegen import class_image

QUICK = [
    ["--help"], ["predict", "--help"], ["models"], ["models", "resnet5*"], ["predict", "x", "--wieghts", "y"],
    ["weights", "list"], ["cache", "list"], ["train", "--help"], ["serve", "--help"], ["bench", "--help"],
    ["export", "--help"], ["eval", "--help"], ["explain", "--help"], ["summary", "--help"], ["--version"],
]  # fmt: skip

PROBE = """
import contextlib, io, json, sys
from resnetkit.cli import main
heavy = ("torch", "numpy", "PIL", "onnxruntime", "openvino", "fastapi", "executorch", "coremltools", "litert_torch", "ai_edge_litert")
out = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    out.append([argv, code, [m for m in heavy if m in sys.modules]])
print(json.dumps(out))
"""


def test_the_command_line_answers_without_torch(tmp_path):
    """A fresh interpreter is the only place to see what an import loads (this one has torch already)."""
    env = {"RESNETKIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(QUICK)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for argv, code, loaded in json.loads(proc.stdout):
        assert loaded == [], f"resnetkit {' '.join(argv)} imported {loaded}"
        assert code == (2 if "--wieghts" in argv else 0), argv


def test_one_image_runs_on_pytorch_at_once(tmp_path, monkeypatch):
    """A job of a few inputs is not converted for another runtime (the conversion would cost more than
    it saves); its answer is torchvision's."""
    monkeypatch.delenv("RESNETKIT_BACKEND")  # the tests' default; a user has none
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    net = tvm.resnet18().eval()
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    class_image(0, 0, size=64).save(tmp_path / "one.jpg")
    proc = cli("predict", tmp_path / "one.jpg", "--weights", path, "--json", "--topk", "1")
    assert proc.returncode == 0, proc.stderr
    assert "fp32 on PyTorch: a small job (1 input) starts at once" in proc.stderr
    assert "s in all," in proc.stderr and "start-up (loading, calibration, compilation)" in proc.stderr
    (row,) = map(json.loads, proc.stdout.splitlines())
    assert runner_cache.entries() == []  # nothing was converted
    # --backend names a runtime: asked for, it is used whatever the size of the job
    asked = cli("predict", tmp_path / "one.jpg", "--weights", path, "--json", "--topk", "1", "--backend", "pytorch")
    assert asked.returncode == 0 and json.loads(asked.stdout)["top"][0]["class"] == row["top"][0]["class"]


def _entry(key: str, size: int, used: float, backend: str = "openvino") -> None:
    def save(runner, folder):
        (folder / "model.bin").write_bytes(b"x" * size)
        return ["model.bin"]

    runner_cache.put(key, object(), save, {"backend": backend, "precision": "int8", "arch": "resnet50"})
    facts_path = runner_cache.root() / key / "entry.json"
    facts = json.loads(facts_path.read_text())
    facts["used"] = used
    facts_path.write_text(json.dumps(facts))


def test_cache_list_and_prune(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    now = time.time()
    _entry("a" * 32, 3 << 20, now)
    _entry("b" * 32, 2 << 20, now - 10 * 86400)
    _entry("c" * 32, 1 << 20, now - 1 * 86400, backend="onnxruntime")
    (tmp_path / "home" / "optimize.json").write_text("{}")
    listed = cli("cache", "list")
    assert listed.returncode == 0 and str(tmp_path / "home") in listed.stdout
    assert "3 optimized models, 6.0 MB" in listed.stdout and "resnet50" in listed.stdout
    rows = [json.loads(line) for line in cli("cache", "list", "--json").stdout.splitlines()]
    assert [r["key"][0] for r in rows] == ["a", "c", "b"]  # most recent first
    assert 3 << 20 < rows[0]["bytes"] < 3.01 * (1 << 20)
    nothing = cli("cache", "prune")
    assert nothing.returncode == 1 and "--older-than DAYS, --max-size SIZE or --all" in nothing.stderr
    assert cli("cache", "prune", "--max-size", "lots").returncode == 2
    old = cli("cache", "prune", "--older-than", "7")
    assert old.returncode == 0 and "removed 1 optimized model (2.0 MB); 2 left (4.0 MB)" in old.stdout
    big = cli("cache", "prune", "--max-size", "3.5M")
    assert "removed 1 optimized model (1.0 MB); 1 left (3.0 MB)" in big.stdout  # the least recently used went
    # A damaged entry is not listed (and never used); a writer's leftover temporary folder is pruned.
    (runner_cache.root() / ("d" * 32)).mkdir()
    (runner_cache.root() / ("d" * 32) / "entry.json").write_text("{cut")
    assert "1 optimized model," in cli("cache", "list").stdout
    everything = cli("cache", "prune", "--all")
    assert everything.returncode == 0 and not (tmp_path / "home" / "optimize.json").exists()
    assert runner_cache.entries() == []


def test_eval_measures_the_deployed_int8_model_and_reuses_it(digits_run, tmp_path, monkeypatch):
    """eval --precision int8 evaluates the runner predict and serve run, built once: the second eval
    takes it from the cache of optimized models (neither calibrating nor quantizing again)."""
    from resnetkit.deploy import available

    if "onnxruntime" not in available("int8"):
        pytest.skip("needs ONNX Runtime (resnetkit[deploy])")
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "home"))
    args = ["eval", "--weights", digits_run, "--precision", "int8", "--backend", "onnxruntime", "--json"]
    first = cli(*args, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert "calibrating on the validation data of the training run" in first.stderr
    again = cli(*args, "--out", tmp_path / "b")
    assert again.returncode == 0 and "the optimized model from the cache" in again.stderr
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert one["ran_on"] == "int8 on onnxruntime" and one["confusion"] == two["confusion"]
    fp32 = json.loads(cli("eval", "--weights", digits_run, "--json", "--out", tmp_path / "c").stdout)
    assert fp32["ran_on"] == "PyTorch" and abs(fp32["acc1"] - one["acc1"]) <= 5.0
    amp = cli("eval", "--weights", digits_run, "--precision", "int8", "--amp", "bf16")
    assert amp.returncode == 1 and "--amp is PyTorch's autocast" in amp.stderr
