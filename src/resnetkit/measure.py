"""Counting multiply-accumulates with torch's own FLOP counter, and timing inference runners side by
side (shared by inspect and deploy)."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Tuple

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


def time_blocks(
    runners: Mapping[str, Callable], x, runs: int, warmup: int, rounds: int = 2, sync: Callable[[], None] = lambda: None
) -> Dict[str, List[float]]:
    """Seconds per call of each runner on ``x``: ``runs`` timed calls each, in ``rounds`` blocks.

    Each block starts with untimed calls (``warmup`` in the first round, one after): runtimes
    such as ONNX Runtime and OpenVINO keep their threads spinning for a while after a call, and
    on a machine with few cores that steals the next runner's time - timing runners call by call
    in turn measured ONNX Runtime at half its speed here. Blocks alternate their order so a
    machine whose speed drifts affects every runner alike."""
    rounds = max(1, min(rounds, runs))
    times: Dict[str, List[float]] = {name: [] for name in runners}
    names = list(runners)
    with torch.no_grad():
        for r in range(rounds):
            per_round = runs // rounds + (1 if r < runs % rounds else 0)
            for name in names if r % 2 == 0 else names[::-1]:
                for _ in range(warmup if r == 0 else 1):
                    runners[name](x)
                sync()
                for _ in range(per_round):
                    t = time.perf_counter()
                    runners[name](x)
                    sync()
                    times[name].append(time.perf_counter() - t)
    return times
