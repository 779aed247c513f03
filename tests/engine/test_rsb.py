"""The ResNet strikes back recipes: their settings as published, and one run through every piece they
add (timm's LAMB and RandAugment, BCE with thresholded targets, stochastic depth)."""

import pytest
import torch

from resnetkit.engine.config import make_config

from ..clirun import cli
from ..imagegen import make_image_folder

pytest.importorskip("timm")

# Wightman, Touvron, Jegou 2021, "ResNet strikes back: An improved training procedure in timm", Table 1,
# and timm's resnet50.a1/a2/a3_in1k model cards: (epochs, lr, weight decay, label smoothing, mixup,
# RandAugment, repeated augmentation, stochastic depth, train size).
PUBLISHED = {
    "rsb-a1": (600, 5e-3, 0.01, 0.1, 0.2, "rand-m7-mstd0.5-inc1", 3, 0.05, 224),
    "rsb-a2": (300, 5e-3, 0.02, 0.0, 0.1, "rand-m7-mstd0.5-inc1", 3, 0.05, 224),
    "rsb-a3": (100, 8e-3, 0.02, 0.0, 0.1, "rand-m6-mstd0.5-inc1", 1, 0.0, 160),
}
COMMON = dict(arch="resnet50", batch_size=2048, optimizer="lamb", schedule="cosine", warmup_epochs=5, loss="bce",
              bce_target_threshold=0.2, cutmix_alpha=1.0, norm_weight_decay=0.0, eval_crop=224, eval_resize=235,
              interpolation="bicubic")  # fmt: skip  # test crop 224 at crop ratio 0.95: floor(224 / 0.95) = 235
FIELDS = ("epochs", "lr", "weight_decay", "label_smoothing", "mixup_alpha", "auto_augment", "repeated_aug",
          "drop_path_rate", "train_crop")  # fmt: skip


@pytest.mark.parametrize("recipe", sorted(PUBLISHED))
def test_each_recipe_resolves_to_the_published_settings(recipe):
    cfg = make_config(recipe, data="imagenet")
    assert tuple(getattr(cfg, f) for f in FIELDS) == PUBLISHED[recipe]
    assert {k: getattr(cfg, k) for k in COMMON} == COMMON


def test_the_bce_loss_thresholds_mixed_targets():
    from resnetkit.engine.trainer import Trainer

    loss = Trainer._loss.__get__(type("T", (), {"cfg": make_config("rsb-a3", data="x", label_smoothing=0.1)})())
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    mixed = torch.tensor([[0.7, 0.3, 0.0]])  # smoothed: 0.663, 0.303, 0.033 -> thresholded at 0.2: 1, 1, 0
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0, 1.0, 0.0]]))
    assert torch.allclose(loss(logits, mixed), want)
    assert torch.allclose(loss(logits, torch.tensor([0])), torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[1.0, 0.0, 0.0]])))  # fmt: skip


def test_a_short_rsb_run_uses_every_piece(tmp_path):
    folder = make_image_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    result = cli(
        "train", "--recipe", "rsb-a2", "--data", folder, "--arch", "resnet18", "--batch-size", "6", "--epochs", "1",
        "--train-crop", "32", "--eval-resize", "36", "--eval-crop", "32", "--warmup-epochs", "0", "-j", "0",
        "--quiet", "--amp", "none", "--out", run,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert "exp_avg" in str(ckpt["optimizer"]["state"][0].keys())  # LAMB's moments
    result = cli("train", "--recipe", "rsb-a1")
    assert result.returncode == 1 and "pass --data DIR" in result.stderr
    result = cli("train", "--data", folder, "--auto-augment", "rand-x", "--out", tmp_path / "bad")
    assert result.returncode == 1 and "--auto-augment" in result.stderr
