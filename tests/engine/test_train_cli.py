"""Training end to end: outputs, bad images, the run-directory policy, exact resume after SIGKILL
and after an interrupt, DDP, eval. CLI behaviour runs in-process; real processes only where a
signal or torchrun is what is tested."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnetkit.engine.config import make_config
from resnetkit.engine.trainer import train
from resnetkit.weights.io import load_safetensors

from ..clirun import cli
from ..imagegen import make_image_folder, write_broken_files

# 16px digits train in fp32 (bf16 is refused below 32px on CPU), about 0.5 s an epoch.
FAST_DIGITS = ["--image-size", "16", "--batch-size", "32", "--quiet", "--workers", "0", "--amp", "none"]


def weights(run: Path) -> dict:
    return load_safetensors(run / "model.safetensors")[0]


def assert_same_weights(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=atol), (k, (a[k] - b[k]).abs().max())


def ok(*args):
    result = cli(*args)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    return result


def one_line_error(result, code=1):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("data"), broken=True)
    run = tmp_path_factory.mktemp("runs") / "folder"
    result = ok(
        "train",
        "--data",
        root,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--train-crop",
        "32",
        "--eval-resize",
        "36",
        "--eval-crop",
        "32",
        "--lr",
        "0.05",
        "--schedule",
        "cosine",
        "--workers",
        "0",
        "--quiet",
        "--out",
        run,
    )
    return root, run, result


def test_folder_training_writes_every_output(folder_run):
    root, run, _ = folder_run
    for name in (
        "config.json",
        "metrics.csv",
        "curves.png",
        "last.pt",
        "best.pt",
        "classes.json",
        "model.safetensors",
        "summary.json",
    ):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc1,val_acc5,lr,images_per_s")
    config = json.loads((run / "config.json").read_text())
    assert len(rows) == 1 + config["epochs"]
    _, meta = load_safetensors(run / "model.safetensors")
    classes = sorted(p.name for p in (root / "train").iterdir())
    assert meta["arch"] == "resnet18" and meta["classes"] == classes and meta["num_classes"] == len(classes)
    assert meta["preprocess"]["crop_size"] == config["eval_crop"]
    assert config["data"] == str(root)
    # eval of the run, without --data, evaluates on the run's own validation folder (not the digits).
    evaluated = cli("eval", "--weights", run, "--json", "-j", "0", "--out", run.parent / "eval-own")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["data"] == str(root / "val")


def test_corrupt_images_skipped_counted_one_line_each(folder_run):
    _, run, result = folder_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_images"] == 3
    assert "3 unreadable images skipped" in result.stdout
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped unreadable image:")]
    assert len(skipped) == 3 and "Warning" not in result.stderr


def test_eval_cli_on_folder(folder_run):
    root, run, _ = folder_run
    result = ok("eval", "--weights", run, "--data", root, "--json", "--workers", "0")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    val_images = sum(1 for _ in (root / "val").rglob("*.png"))
    assert report["images"] == val_images
    assert sum(sum(row) for row in report["confusion"]) == val_images
    correct = sum(report["confusion"][i][i] for i in range(len(report["confusion"])))
    assert report["acc1"] == pytest.approx(100.0 * correct / val_images)
    assert set(report["per_class_acc1"]) == {p.name for p in (root / "val").iterdir()}
    assert Path(report["confusion_png"]).stat().st_size > 0
    assert (run / "eval.json").is_file()


def test_eval_refuses_mismatched_classes(folder_run, tmp_path):
    _, run, _ = folder_run
    other = make_image_folder(tmp_path / "other", classes=2, train_per_class=1, val_per_class=1)
    assert "3 classes" in one_line_error(cli("eval", "--weights", run, "--data", other))


def test_predict_dir_with_broken_files(folder_run):
    root, run, _ = folder_run
    result = cli("predict", root / "train" / "class_0", "--weights", run, "--json", "--topk", "2")
    assert result.returncode == 1  # some files failed
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    files = sorted((root / "train" / "class_0").iterdir())
    errors = [r for r in rows if "error" in r]
    assert len(rows) == len(files) and len(errors) == 3
    good = [r for r in rows if "top" in r]
    assert all(len(r["top"]) == 2 and r["top"][0]["class"].startswith("class_") for r in good)


def test_bad_flags_give_one_line(tmp_path):
    result = cli("train", "--optimizer", "adam")
    assert result.returncode == 2 and "invalid choice: 'adam'" in result.stderr and "'sgd', 'adamw'" in result.stderr
    result = cli("train", "--epoch", "3")  # no silent prefix matching; a suggestion instead
    assert result.returncode == 2 and "did you mean: --epoch -> --epochs?" in result.stderr
    assert "does not exist" in one_line_error(cli("train", "--data", tmp_path / "nope"))
    (tmp_path / "file.txt").write_text("x")
    assert "is a file, not a folder" in one_line_error(cli("train", "--data", tmp_path / "file.txt"))
    assert "no last.pt" in one_line_error(cli("train", "--resume", tmp_path))


def test_familiar_flag_names_are_aliases(tmp_path):
    run = tmp_path / "run"
    ok(
        "train",
        "--model",
        "resnet18",
        "-b",
        "32",
        "-j",
        "0",
        "--lr-scheduler",
        "constant",
        "--opt",
        "sgd",
        "--output-dir",
        run,
        "--image-size",
        "16",
        "--amp",
        "none",
        "--quiet",
        "--max-steps",
        "2",
    )
    config = json.loads((run / "config.json").read_text())
    assert (config["arch"], config["batch_size"], config["workers"], config["schedule"]) == (
        "resnet18",
        32,
        0,
        "constant",
    )


def test_run_directory_is_never_silently_overwritten(tmp_path):
    run = tmp_path / "run"
    ok("train", *FAST_DIGITS, "--max-steps", "3", "--out", run)
    before = (run / "last.pt").read_bytes()
    err = one_line_error(cli("train", *FAST_DIGITS, "--max-steps", "3", "--out", run))
    assert "--resume" in err and "--exist-ok" in err and f"{run}2" in err
    assert (run / "last.pt").read_bytes() == before  # the old run is untouched
    result = ok("train", *FAST_DIGITS, "--max-steps", "2", "--out", run, "--exist-ok")
    assert "removed the previous run's" in result.stdout
    assert torch.load(run / "last.pt", weights_only=True)["global_step"] == 2


def test_run_directory_paths_that_cannot_be_used(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "is an existing file" in one_line_error(cli("train", *FAST_DIGITS, "--out", tmp_path / "afile"))
    assert "is a file, not a directory" in one_line_error(
        cli("train", *FAST_DIGITS, "--out", tmp_path / "afile" / "run")
    )


def test_max_steps_stops_resumably(tmp_path):
    run = tmp_path / "run"
    result = ok("train", *FAST_DIGITS, "--epochs", "2", "--max-steps", "5", "--out", run)
    assert "continue with: resnetkit train --resume" in result.stdout
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert (ckpt["global_step"], ckpt["batch"], ckpt["epoch"]) == (5, 5, 0)
    assert not (run / "model.safetensors").exists()


def test_interrupt_then_resume_is_bit_exact(tmp_path):
    """Ctrl-C (SIGINT, raised from a step hook at an exact step: no timing) stops between steps; the
    resumed run reaches step 14 (mid-epoch) with the weights and BatchNorm statistics of an
    uninterrupted one."""
    common = dict(
        image_size=16, batch_size=64, epochs=1, amp="none", quiet=True, workers=0, deterministic=True, pad_crop=2
    )
    ref = tmp_path / "ref"
    train(make_config("digits", out=str(ref), max_steps=14, **common), log=lambda s: None)

    stopped = tmp_path / "stopped"

    def hook(trainer):
        if trainer.global_step == 9:  # mid-epoch (22 steps per epoch)
            signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when started in the background
    result = train(make_config("digits", out=str(stopped), **common), log=lambda s: None, on_step=hook)
    assert result.interrupted and result.stop_reason == "signal"
    ckpt = torch.load(stopped / "last.pt", weights_only=True)
    assert ckpt["global_step"] == 9
    assert signal.getsignal(signal.SIGINT) is before  # the handler was restored
    resumed = ok("train", "--resume", stopped, "--quiet", "--max-steps", "14")
    assert "resumed" in resumed.stdout
    want, got = (torch.load(run / "last.pt", weights_only=True) for run in (ref, stopped))
    assert want["global_step"] == got["global_step"] == 14
    assert_same_weights(want["model"], got["model"])


def start_training_until_checkpoint(args, run, threads=1):
    """A real training process, returned once it reports its first step checkpoint (it prints
    "checkpoint: step N saved" when not --quiet): an event waited for, not a clock raced. It is
    given far more epochs than it will get to."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    args = [a for a in args if a != "--quiet"]
    command = [sys.executable, "-m", "resnetkit", "train", *args, "--epochs", "50", "--out", str(run)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # blocks until the trainer says something; ends if it exits
        seen.append(line)
        if line.startswith("checkpoint: step"):
            break
    assert proc.poll() is None and (run / "last.pt").is_file(), "".join(seen)
    return proc


def kill_mid_epoch(args, run, before_step: int) -> None:
    """A training process (this process's thread count: float rounding depends on it) SIGKILLed after
    its first step checkpoint, checked to have left a mid-epoch checkpoint before ``before_step``."""
    proc = start_training_until_checkpoint([*args, "--save-every-steps", "5"], run, threads=torch.get_num_threads())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.safetensors").exists()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert 0 < ckpt["global_step"] < before_step and ckpt["epoch"] == 0


def test_sigint_in_a_real_process_saves_and_exits_130(tmp_path):
    run = tmp_path / "run"
    proc = start_training_until_checkpoint([*FAST_DIGITS, "--save-every-steps", "5"], run)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resnetkit train --resume" in out and "Traceback" not in err
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["global_step"] >= 5 and ckpt["epoch"] < 50


@pytest.mark.sweep  # a real process killed, then resumed: make test-scale (the in-process stop + resume is above)
def test_resume_after_sigkill_gives_identical_weights(tmp_path):
    # The default path: 32px, bf16 autocast, channels_last; constant lr so the killed run (started
    # with more epochs) follows the same schedule as the reference. Both stop at step 14, mid-epoch.
    args = [
        "--image-size",
        "32",
        "--batch-size",
        "64",
        "--quiet",
        "--workers",
        "0",
        "--deterministic",
        "--schedule",
        "constant",
        "--lr",
        "0.05",
    ]
    ref = tmp_path / "ref"
    ok("train", *args, "--epochs", "1", "--max-steps", "14", "--out", ref)

    killed = tmp_path / "killed"
    kill_mid_epoch(args, killed, before_step=14)  # 22 steps an epoch
    ok("train", "--resume", killed, "--quiet", "--epochs", "1", "--max-steps", "14")
    ours, theirs = (torch.load(d / "last.pt", weights_only=True) for d in (ref, killed))
    assert ours["global_step"] == theirs["global_step"] == 14
    assert_same_weights(ours["model"], theirs["model"])
    assert_same_weights(ours["optimizer"]["state"][0], theirs["optimizer"]["state"][0])


def test_resume_refuses_result_changing_flags(tmp_path):
    run = tmp_path / "run"
    ok("train", *FAST_DIGITS, "--batch-size", "128", "--epochs", "1", "--out", run)
    assert "cannot change on --resume" in one_line_error(cli("train", "--resume", run, "--lr", "0.5"))
    extended = ok("train", "--resume", run, "--epochs", "2", "--quiet")  # extending a finished run is allowed
    assert "the onecycle schedule spans the new total" in extended.stdout
    assert (run / "metrics.csv").read_text().count("\n") == 3


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--weight-decay", "-1"], ["--weight-decay", "[0, inf]"]),
        (["--mixup-alpha", "-1"], ["--mixup-alpha"]),
        (["--cutmix-alpha", "-0.5"], ["--cutmix-alpha"]),
        (["--save-every-steps", "-1"], ["--save-every-steps", ">= 0"]),
        (["--warmup-epochs", "-1"], ["--warmup-epochs"]),
        (["--warmup", "-1"], ["--warmup-epochs"]),
        (["--eval-crop", "300", "--eval-resize", "256"], ["--eval-crop", "--eval-resize"]),
        (["--random-erase", "2"], ["--random-erase", "[0, 1]"]),
        (["--momentum", "-1"], ["--momentum", "[0, 1)"]),
        (["--schedule", "step", "--step-size", "0"], ["--step-size", ">= 1"]),
        (["--label-smoothing", "1"], ["--label-smoothing"]),
        (["--lr", "0"], ["--lr"]),
        (["--batch-size", "1"], ["BatchNorm", "--norm group"]),
    ],
)
def test_nonsense_values_are_refused_by_name(tmp_path, flags, words):
    err = one_line_error(cli("train", *FAST_DIGITS, *flags, "--out", tmp_path / "run"))
    assert all(w in err for w in words), err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_config_object_validates_itself():
    from resnetkit.engine.config import TrainConfig

    # The library names the field (the CLI shows the flag).
    with pytest.raises(ValueError, match="^optimizer 'adam' is not one of sgd, adamw") as caught:
        TrainConfig(optimizer="adam")
    assert caught.value.field == "optimizer"
    assert "error: --lr must be in (0, inf]" in one_line_error(cli("train", "--lr", "0", "--out", "/nonexistent/r"))


def test_single_class_and_empty_class_folders_are_refused(tmp_path):
    one = make_image_folder(tmp_path / "one", classes=1, train_per_class=4, val_per_class=2)
    assert "single class" in one_line_error(cli("train", "--data", one, "--out", tmp_path / "r1"))
    empty = make_image_folder(tmp_path / "empty", classes=3, train_per_class=4, val_per_class=2)
    for p in (empty / "train" / "class_1").iterdir():
        p.unlink()
    assert "class_1" in one_line_error(cli("train", "--data", empty, "--out", tmp_path / "r2"))


def test_a_batch_left_with_one_image_is_dropped_not_a_crash(tmp_path):
    """3 readable images in batches of 2: some batch ends with one image once the corrupt files
    are skipped, which BatchNorm cannot train on."""
    root = make_image_folder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=2)
    (root / "train" / "class_1" / "001.png").unlink()
    write_broken_files(tmp_path / "junk")
    for i, p in enumerate(sorted((tmp_path / "junk").iterdir())):
        shutil.copy(p, root / "train" / f"class_{i % 2}" / f"broken{i}{p.suffix}")
    run = tmp_path / "run"
    ok(
        "train",
        "--data",
        root,
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--train-crop",
        "32",
        "--eval-resize",
        "32",
        "--eval-crop",
        "32",
        "--workers",
        "0",
        "--quiet",
        "--out",
        run,
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dropped_single_image_batches"] >= 1 and summary["skipped_images"] == 3
