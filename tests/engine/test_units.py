"""Unit tests of the pieces the end-to-end tests pass through: evaluation arithmetic, reports,
data sets, preprocessing, and the CLI's help and `models` listing."""

import argparse
import csv

import pytest
import torch

import resnetkit as rk
from resnetkit.cli import build_parser
from resnetkit.data.datasets import class_names, find_images
from resnetkit.data.transforms import Preprocess
from resnetkit.engine.evaluate import evaluate
from resnetkit.engine.report import write_confusion, write_metrics_csv

from ..clirun import cli
from ..imagegen import make_image_folder


class FixedLogits(torch.nn.Module):
    """Returns the logits stored for each input row (the input's first value indexes them)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_evaluate_counts_top1_top5_loss_and_confusion():
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5.0, 4, 0, 0, 0], [1.0, 2, 3, 4, 5, 6]])
    targets = torch.tensor([0, 2, 0])  # right; second best; sixth (outside top-5)
    x = torch.arange(3).float().reshape(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    result = evaluate(
        FixedLogits(logits),
        [(x[:2], targets[:2]), (x[2:], targets[2:], ["bad.png: corrupt"])],
        6,
        torch.device("cpu"),
        amp="none",
        channels_last=False,
    )
    assert result.count == 3 and result.skipped == 1
    assert result.acc1 == pytest.approx(100 / 3) and result.acc5 == pytest.approx(200 / 3)
    want = torch.nn.functional.cross_entropy(logits, targets).item()
    assert result.loss == pytest.approx(want, rel=1e-6)
    assert result.confusion[2, 1] == 1 and result.confusion[0, 0] == 1 and result.confusion[0, 5] == 1
    assert result.per_class_acc[0] == 50.0


def test_reports(tmp_path):
    history = [{"epoch": 1, "train_loss": 0.5, "val_acc1": 90.0}, {"epoch": 2, "train_loss": 0.25, "val_acc1": 95.5}]
    write_metrics_csv(history, tmp_path / "m.csv")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["val_acc1"] for r in rows] == ["90", "95.5"]
    write_confusion(torch.tensor([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_image_folder_discovery(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=3, train_per_class=2, val_per_class=1)
    (root / "train" / ".hidden").mkdir()
    assert class_names(root / "train") == ["class_0", "class_1", "class_2"]
    samples = find_images(root / "train")
    assert len(samples) == 6 and [t for _, t in samples] == [0, 0, 1, 1, 2, 2]


def test_preprocess_round_trip_and_output():
    pre = Preprocess(resize_size=40, crop_size=32, interpolation="bicubic", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert Preprocess.from_dict(pre.to_dict()) == pre
    from PIL import Image

    out = pre.transform()(Image.new("RGB", (80, 60), (255, 255, 255)))
    assert out.shape == (3, 32, 32) and torch.allclose(out, torch.full_like(out, 2.0))
    with pytest.raises(ValueError, match="interpolation"):
        Preprocess(interpolation="lanczos9")


def test_models_command_lists_every_architecture():
    result = cli("models", "--json")
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in rows] == rk.list_models()
    r50 = next(r for r in rows if r["name"] == "resnet50")
    assert r50["layers"] == [3, 4, 6, 3] and r50["block"] == "Bottleneck" and r50["weights"] >= 2
    counted = [json.loads(line) for line in cli("models", "resnet50", "--params", "--json").stdout.splitlines()]
    assert counted == [dict(r50, params=25_557_032)]


def _parsers(parser, prefix=""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _parsers(sub, f"{prefix}{name} ")


def test_every_flag_has_help_and_choices_are_shown():
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"resnetkit {name} {action.option_strings[0]} has no help"
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                assert action.metavar is None, f"resnetkit {name} {action.option_strings} hides its choices"
    text = cli("train", "--help").stdout
    assert "'onecycle' (digits)" in text and "{sgd,adamw,lamb}" in text
    assert "convert" in cli("weights", "--help").stdout
