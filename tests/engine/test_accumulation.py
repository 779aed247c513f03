"""Gradient accumulation: a batch run as micro-batches gives the weights of the batch run at once."""

import torch

from resnetkit.engine.config import make_config
from resnetkit.engine.trainer import train

from ..clirun import cli


def _train(out, accum_steps, seen=None):
    """The weights after 4 steps (and, in ``seen``, after the first)."""
    cfg = make_config(
        "digits", out=str(out), image_size=16, batch_size=32, epochs=1, amp="none", quiet=True, workers=0,
        deterministic=True, norm="group", max_steps=4, accum_steps=accum_steps, mixup_alpha=0.2,
    )  # fmt: skip

    def hook(trainer):
        if seen is not None and trainer.global_step == 1:
            seen.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    train(cfg, log=lambda s: None, on_step=hook)
    return torch.load(out / "last.pt", weights_only=True)["model"]


def test_four_micro_batches_give_the_weights_of_one_batch_four_times_larger(tmp_path):
    # GroupNorm: nothing depends on which images share a micro-batch, so only float rounding differs.
    # MixUp's soft targets and the recipe's label smoothing go through the same weighting.
    first = {}
    whole = _train(tmp_path / "whole", 1, first)
    micro = _train(tmp_path / "micro", 4)
    rounding = max(float((micro[k] - v).abs().max()) for k, v in whole.items())
    moved = max(float((whole[k] - v).abs().max()) for k, v in first.items())
    assert rounding < 1e-5 and moved > 1e-2, (rounding, moved)


def test_micro_batches_too_small_for_batchnorm_are_refused_in_one_line(tmp_path):
    result = cli("train", "--image-size", "16", "--batch-size", "8", "--accum-steps", "8", "--out", tmp_path / "r")
    assert result.returncode in (1, 2)
    assert "--accum-steps 8" in result.stderr and "BatchNorm needs at least 2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r" / "last.pt").exists()
