"""Learning-rate schedules: a pure function of the step, run by torch's LambdaLR."""

from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import torch

from ..errors import InvalidOption

WARMUP_START = 0.01  # linear warmup starts at 1 % of the peak lr (torchvision's lr_warmup_decay)
ONECYCLE_DIV = 25.0  # one-cycle starts at peak / 25 ...
ONECYCLE_FINAL_DIV = 1e4  # ... and ends at start / 1e4 (torch.optim.lr_scheduler.OneCycleLR defaults)


def lr_factor(
    step: int,
    steps_per_epoch: int,
    epochs: int,
    schedule: str,
    warmup_epochs: float = 0.0,
    step_size: int = 30,
    gamma: float = 0.1,
    milestones: Sequence[int] = (),
) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if schedule == "onecycle":
        rise = warmup if warmup > 0 else int(0.3 * total)
        start = 1.0 / ONECYCLE_DIV
        end = start / ONECYCLE_FINAL_DIV
        if step < rise:
            return start + (1.0 - start) * (1 - math.cos(math.pi * step / rise)) / 2
        t = min(1.0, (step - rise) / max(1, total - rise))
        return end + (1.0 - end) * (1 + math.cos(math.pi * t)) / 2
    if step < warmup:
        return WARMUP_START + (1.0 - WARMUP_START) * step / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        if step_size < 1:
            raise InvalidOption(f"step_size must be >= 1 epoch, got {step_size}", field="step_size")
        return gamma ** (step // (steps_per_epoch * step_size))
    if schedule == "multistep":
        epoch = step // steps_per_epoch
        return gamma ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return (1 + math.cos(math.pi * t)) / 2
    raise InvalidOption(f"unknown schedule {schedule!r}; choose step, multistep, cosine, onecycle or constant")


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    schedule: str,
    warmup_epochs: float,
    step_size: int,
    gamma: float,
    milestones: Sequence[int] = (),
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping ``lr_factor`` once per optimizer step (each group's lr is its own base x factor)."""
    fn = partial(
        lr_factor,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        step_size=step_size,
        gamma=gamma,
        milestones=tuple(milestones),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=fn)
