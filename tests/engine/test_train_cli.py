"""End-to-end training through the CLI: outputs, bad images, exact resume, Ctrl-C, DDP, eval."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnetkit.weights.io import load_safetensors

from ..imagegen import make_image_folder

# 16px digits train in fp32 (bf16 is refused below 32px on CPU), about 0.5 s an epoch.
FAST_DIGITS = ["--image-size", "16", "--batch-size", "32", "--quiet", "--workers", "0", "--amp", "none"]


def cli(*args, check=True, env_extra=None, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "resnetkit", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def weights(run: Path) -> dict:
    return load_safetensors(run / "model.safetensors")[0]


def assert_same_weights(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=atol), (k, (a[k] - b[k]).abs().max())


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("data"), broken=True)
    run = tmp_path_factory.mktemp("runs") / "folder"
    proc = cli("train", "--data", root, "--epochs", "2", "--batch-size", "8", "--train-crop", "32",
               "--eval-resize", "36", "--eval-crop", "32", "--lr", "0.05", "--schedule", "cosine", "--workers", "1",
               "--quiet", "--out", run)
    return root, run, proc


def test_folder_training_writes_every_output(folder_run):
    root, run, proc = folder_run
    for name in ("config.json", "metrics.csv", "curves.png", "last.pt", "best.pt", "classes.json",
                 "model.safetensors", "summary.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc1,val_acc5,lr,images_per_s")
    assert len(rows) == 3
    _, meta = load_safetensors(run / "model.safetensors")
    assert meta["arch"] == "resnet18" and meta["classes"] == ["class_0", "class_1", "class_2"]
    assert meta["preprocess"]["crop_size"] == 32 and meta["num_classes"] == 3
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == str(root) and config["epochs"] == 2


def test_corrupt_images_skipped_and_counted(folder_run):
    _, run, proc = folder_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_images"] == 3
    assert "3 unreadable images skipped" in proc.stdout


def test_eval_cli_on_folder(folder_run, tmp_path):
    root, run, _ = folder_run
    proc = cli("eval", "--weights", run, "--data", root, "--json", "--workers", "0")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["images"] == 12 and 0 <= report["acc1"] <= 100 and report["acc5"] == 100.0
    assert set(report["per_class_acc1"]) == {"class_0", "class_1", "class_2"}
    assert Path(report["confusion_png"]).stat().st_size > 0
    assert (run / "eval.json").is_file()


def test_eval_refuses_mismatched_classes(folder_run, tmp_path):
    _, run, _ = folder_run
    other = make_image_folder(tmp_path / "other", classes=2, train_per_class=1, val_per_class=1)
    proc = cli("eval", "--weights", run, "--data", other, check=False)
    assert proc.returncode == 1
    assert "3 classes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_predict_dir_with_broken_files(folder_run, tmp_path):
    root, run, _ = folder_run
    proc = cli("predict", root / "train" / "class_0", "--weights", run, "--json", "--topk", "2", check=False)
    assert proc.returncode == 1  # some files failed
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = [r for r in rows if "error" in r]
    assert len(errors) == 3 and len(rows) == 15
    good = [r for r in rows if "top" in r]
    assert all(len(r["top"]) == 2 and r["top"][0]["class"].startswith("class_") for r in good)


def test_bad_flags_give_one_line(tmp_path):
    proc = cli("train", "--optimizer", "adam", check=False)
    assert proc.returncode == 2 and "invalid choice: 'adam'" in proc.stderr
    proc = cli("train", "--epoch", "3", check=False)  # no silent prefix matching; a suggestion instead
    assert proc.returncode == 2 and "did you mean: --epoch -> --epochs?" in proc.stderr
    proc = cli("train", "--data", tmp_path / "nope", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = cli("train", "--resume", tmp_path, check=False)
    assert proc.returncode == 1 and "no last.pt" in proc.stderr


def test_resume_after_sigkill_gives_identical_weights(tmp_path):
    # The default path: 32px, bf16 autocast, channels_last.
    args = ["train", "--image-size", "32", "--batch-size", "64", "--quiet", "--workers", "0", "--epochs", "3",
            "--deterministic", "--save-every-steps", "7"]
    ref = tmp_path / "ref"
    cli(*args, "--out", ref)

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "resnetkit", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it get past the first checkpoint, into the middle of some epoch
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists()
    ckpt = torch.load(killed / "last.pt", weights_only=True)
    assert ckpt["global_step"] > 0
    cli("train", "--resume", killed, "--quiet")
    assert_same_weights(weights(ref), weights(killed))
    assert (killed / "metrics.csv").read_text() .count("\n") == 4


def test_ctrl_c_saves_and_resumes(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "resnetkit", "train", *FAST_DIGITS, "--epochs", "3",
                             "--out", str(run)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (run / "config.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resnetkit train --resume" in out
    assert (run / "last.pt").is_file()
    cli("train", "--resume", run, "--quiet")
    assert (run / "model.safetensors").is_file()


def test_resume_refuses_result_changing_flags(tmp_path):
    run = tmp_path / "run"
    cli("train", *FAST_DIGITS, "--epochs", "1", "--out", run)
    proc = cli("train", "--resume", run, "--lr", "0.5", check=False)
    assert proc.returncode == 1 and "cannot change on --resume" in proc.stderr
    # Extending a finished run by an epoch is allowed.
    cli("train", "--resume", run, "--epochs", "2", "--quiet")
    assert (run / "metrics.csv").read_text().count("\n") == 3


def test_two_process_ddp_matches_single_process(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    # 11 steps of batch 128, with per-sample augmentation (pad-crop) that must not depend on the rank.
    # Few steps: float rounding alone (e.g. 1 vs 2 threads) drifts ~1e-3 apart over a whole epoch.
    common = ["train", *FAST_DIGITS, "--batch-size", "128", "--epochs", "1", "--norm", "group", "--lr", "0.1",
              "--schedule", "cosine", "--no-channels-last", "--pad-crop", "2"]
    single = tmp_path / "single"
    cli(*common, "--out", single)
    ddp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "resnetkit",
                           *common, "--out", str(ddp)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_weights(weights(single), weights(ddp), atol=1e-4)
    # Only rank 0 wrote files, and metrics were reduced over both ranks (same val accuracy).
    a = (single / "metrics.csv").read_text().splitlines()[1].split(",")
    b = (ddp / "metrics.csv").read_text().splitlines()[1].split(",")
    assert a[4] == b[4]
