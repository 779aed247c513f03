"""Evaluation: top-1/top-5, loss, per-class accuracy and the confusion matrix (summed over ranks)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidOption
from . import distributed as D


def autocast_context(amp: str, device: torch.device):
    """Mixed precision for ``amp`` in bf16 | fp16 | none; fp16 exists on GPUs only."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise InvalidOption("amp fp16 needs a GPU; use amp bf16 on CPU", field="amp")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def eval_batches(dataset, batch_size: int, workers: int = 0, rank: int = 0, world: int = 1) -> Iterable:
    """Evaluation batches of (images, targets, skipped messages): every sample exactly once
    across ranks, in order; in-memory data sets are sliced, folders decoded by a DataLoader."""
    from ..data.datasets import TensorImages, collate
    from ..data.sampling import shard

    if batch_size < 1:
        raise InvalidOption(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
    indices = shard(len(dataset), rank, world)
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if isinstance(dataset, TensorImages):
        return (dataset.batch(b) + ([],) for b in batches)
    from torch.utils.data import DataLoader

    from ..data.shards import ShardStream

    if isinstance(dataset, ShardStream):  # streamed: each rank and worker reads shards of its own
        dataset.arrange(batch_size, rank, world, workers)
        return DataLoader(dataset, batch_size=None, num_workers=workers)

    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate)


def usable_batches(batches: Iterable, skipped: List[int], on_skipped: Optional[Callable[[list], None]]):
    """(images, targets) of each batch of (images, targets[, skipped messages]) that holds images;
    the unreadable files are counted in ``skipped[0]`` and reported to ``on_skipped``."""
    for batch in batches:
        x, y = batch[0], batch[1]
        if len(batch) > 2 and batch[2]:
            skipped[0] += len(batch[2])
            if on_skipped is not None:
                on_skipped(batch[2])
        if len(y):
            yield x, y


def forward(model: nn.Module, x: torch.Tensor, device: torch.device, amp: str, channels_last: bool) -> torch.Tensor:
    """``model``'s float32 logits for ``x`` on ``device``, under ``amp``'s autocast."""
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast_context(amp, device):
        return model(x).float()


@dataclass
class EvalResult:
    loss: float
    acc1: float
    acc5: float
    count: int
    confusion: torch.Tensor  # [true, predicted] counts
    skipped: int = 0
    nonfinite: int = 0  # images whose logits held NaN or Inf: counted as wrong, loss over the others

    @property
    def score(self) -> float:
        """What a training run keeps its best checkpoint by."""
        return self.acc1

    @property
    def per_class_acc(self) -> List[float]:
        totals = self.confusion.sum(1).clamp(min=1)
        return (100.0 * self.confusion.diag() / totals).tolist()

    def to_dict(self, classes: Optional[List[str]] = None) -> dict:
        names = classes or [str(i) for i in range(len(self.confusion))]
        return {
            "loss": self.loss,
            "acc1": self.acc1,
            "acc5": self.acc5,
            "images": self.count,
            "skipped": self.skipped,
            "nonfinite_outputs": self.nonfinite,
            "per_class_acc1": dict(zip(names, self.per_class_acc)),
            "confusion": self.confusion.tolist(),
        }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    num_classes: int,
    device: torch.device,
    amp: str = "bf16",
    channels_last: bool = True,
    label_smoothing: float = 0.0,
    dist_info: Optional[D.DistInfo] = None,
    on_skipped: Optional[Callable[[list], None]] = None,
) -> EvalResult:
    """Run ``model`` over ``batches`` of (images, targets[, skipped messages])."""
    info = dist_info or D.DistInfo()
    was_training = model.training
    model.eval()
    loss_sum, top1, top5, n, nonfinite, skipped = 0.0, 0, 0, 0, 0, [0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    for x, y in usable_batches(batches, skipped, on_skipped):
        logits, y = forward(model, x, device, amp, channels_last), y.to(device)
        # A row with NaN or Inf is that image's failure: wrong at top-1 and top-5, out of the loss and
        # of the confusion matrix, and counted.
        finite = torch.isfinite(logits).all(1)
        nonfinite += int((~finite).sum())
        if bool(finite.any()):
            loss_sum += float(
                F.cross_entropy(logits[finite], y[finite], label_smoothing=label_smoothing, reduction="sum")
            )
        topk = torch.nan_to_num(logits).topk(min(5, logits.shape[1]), dim=1).indices
        top1 += int(((topk[:, 0] == y) & finite).sum())
        top5 += int(((topk == y[:, None]).any(1) & finite).sum())
        n += len(y)
        ones = torch.ones(int(finite.sum()), dtype=torch.float64)
        confusion.index_put_((y[finite].cpu(), topk[finite, 0].cpu()), ones, accumulate=True)
    model.train(was_training)
    loss_sum, top1, top5, n, skipped, nonfinite = D.all_sum([loss_sum, top1, top5, n, skipped[0], nonfinite], info)
    if info.enabled:
        confusion = torch.tensor(D.all_sum(confusion.flatten().tolist(), info)).reshape(num_classes, num_classes)
    n = int(n)
    return EvalResult(
        loss=loss_sum / max(1, n),
        acc1=100.0 * top1 / max(1, n),
        acc5=100.0 * top5 / max(1, n),
        count=n,
        confusion=confusion.long(),
        skipped=int(skipped),
        nonfinite=int(nonfinite),
    )
