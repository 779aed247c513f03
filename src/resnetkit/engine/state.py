"""The state of a training run that is not the model's or the optimizer's: where it is (epoch,
batch, step), the running sums of the epoch, the history, the best accuracy, the skipped files.
Saved in every checkpoint and restored on resume, as one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class EpochTotals:
    """Running sums over one epoch's training steps."""

    loss_sum: float = 0.0
    correct: int = 0
    images: int = 0
    data_seconds: float = 0.0
    step_seconds: float = 0.0

    def as_list(self) -> List[float]:
        return [self.loss_sum, self.correct, self.images, self.data_seconds, self.step_seconds]

    @classmethod
    def from_list(cls, values) -> EpochTotals:
        loss, correct, images, data, step = values
        return cls(float(loss), int(correct), int(images), float(data), float(step))

    def add(self, loss_sum: float, correct: int, images: int, data_s: float, step_s: float) -> None:
        self.loss_sum += loss_sum
        self.correct += correct
        self.images += images
        self.data_seconds += data_s
        self.step_seconds += step_s


@dataclass
class TrainState:
    """Where a run is and what it has seen. ``batch`` counts the batches done in the current epoch,
    ``step`` the optimizer steps in all (scheduler steps included for batches dropped as too small)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    totals: EpochTotals = field(default_factory=EpochTotals)
    history: List[dict] = field(default_factory=list)
    best_acc1: float = -1.0
    skipped: Dict[str, str] = field(default_factory=dict)
    tiny_batches: int = 0

    def note_skipped(self, messages: List[str]) -> List[str]:
        """Record unreadable files; returns the ones not seen before."""
        new = [m for m in messages if m not in self.skipped]
        self.skipped.update((m, m) for m in new)
        return new

    def end_epoch(self, row: dict, score: float) -> bool:
        """Record an epoch's metrics and move to the next epoch; True if its ``score`` (the validation
        metric: top-1, or mAP for multi-label; kept as ``best_acc1``) was the best so far."""
        self.history.append(row)
        improved = score > self.best_acc1
        self.best_acc1 = max(self.best_acc1, score)
        self.epoch += 1
        self.batch = 0
        self.totals = EpochTotals()
        return improved

    @property
    def train_seconds(self) -> float:
        return sum(r.get("epoch_seconds", 0.0) for r in self.history)

    # The keys are the checkpoint format's ("resnetkit-checkpoint-1"), so older checkpoints resume.
    def state_dict(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "global_step": self.step,
            "epoch_sums": self.totals.as_list(),
            "history": list(self.history),
            "best_acc1": self.best_acc1,
            "skipped": dict(self.skipped),
            "tiny_batches": self.tiny_batches,
        }

    def load_state_dict(self, d: Dict[str, Any]) -> None:
        self.epoch, self.batch, self.step = int(d["epoch"]), int(d["batch"]), int(d["global_step"])
        self.totals = EpochTotals.from_list(d["epoch_sums"])
        self.history = list(d["history"])
        self.best_acc1 = float(d["best_acc1"])
        self.skipped = dict(d.get("skipped") or {})
        self.tiny_batches = int(d.get("tiny_batches", 0))
