"""Counting multiply-accumulates with torch's own FLOP counter (shared by inspect and deploy)."""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn


def count_macs(model: nn.Module, input_size: Tuple[int, int], in_chans: int = 3) -> Tuple[int, Dict[str, int]]:
    """(total MACs, MACs per module name) of one forward pass of one image, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; FLOPs / 2).
    Runs where the model's parameters are (the meta device costs no memory); the model's
    train/eval mode is restored."""
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model.eval()(torch.zeros(1, in_chans, *input_size, device=device))
    finally:
        model.train(was_training)
    root = type(model).__name__
    per_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name.startswith(root + "."):
            per_module[name[len(root) + 1 :]] = int(sum(ops.values()) // 2)
    return int(counter.get_total_flops() // 2), per_module
