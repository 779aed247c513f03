"""Knowledge distillation: a student trained on the teacher's soft targets alone (kd_alpha 1: no label
is ever seen) learns the task; teachers that cannot teach this data are refused in one line."""

import json

import pytest
import torch

from resnetkit.engine.config import make_config
from resnetkit.engine.trainer import train

from ..clirun import cli
from ..imagegen import write_small_weights


def _student(out, teacher, alpha, **extra):
    cfg = make_config(
        "digits", out=str(out), image_size=16, batch_size=64, amp="none", quiet=True, workers=0,
        teacher=str(teacher), kd_alpha=alpha, **extra,
    )  # fmt: skip
    return train(cfg, log=lambda s: None)


@pytest.mark.sweep  # two epochs: make test-scale (make test keeps the one-step check below)
def test_a_student_learns_from_the_teachers_soft_targets_alone(digits_run, tmp_path):
    taught = _student(tmp_path / "taught", digits_run, 1.0, epochs=2, lr=0.05)
    # The labels' weight is 0: whatever the student learned came from the teacher.
    assert taught.best_acc1 > 50, taught.history
    assert json.loads((tmp_path / "taught" / "config.json").read_text())["teacher"] == str(digits_run)


def test_the_distillation_term_changes_the_step(digits_run, tmp_path):
    """One step with the teacher's weight 1 differs from one with weight 0 (label training)."""
    first = {}
    for alpha in (0.0, 1.0):
        _student(tmp_path / f"step{alpha}", digits_run, alpha, max_steps=1)
        first[alpha] = torch.load(tmp_path / f"step{alpha}" / "last.pt", weights_only=True)["model"]["fc.weight"]
    assert not torch.equal(first[0.0], first[1.0])


def test_a_teacher_of_other_classes_or_inputs_is_refused_in_one_line(tmp_path):
    three = tmp_path / "three.safetensors"
    write_small_weights(three)  # 3 classes; the digits have 10
    ten = tmp_path / "ten.safetensors"
    write_small_weights(ten, classes=tuple("0123456789"))  # 10 classes, but inputs normalised otherwise
    missing = tmp_path / "gone.safetensors"
    for teacher, words in (
        (three, "has 3 classes but the data has 10"),
        (ten, "would see the wrong images"),
        (missing, "--teacher: weights"),  # the resolver's own error, saying which weights it is about
    ):
        result = cli(
            "train", "--image-size", "16", "--teacher", teacher, "--out", tmp_path / teacher.stem, "--max-steps", "1"
        )
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / teacher.stem / "last.pt").exists()
    result = cli("train", "--image-size", "16", "--kd-alpha", "1.5", "--out", tmp_path / "b")
    assert result.returncode == 1 and "--kd-alpha must be in [0, 1]" in result.stderr
