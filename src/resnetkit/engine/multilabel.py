"""Multi-label evaluation: mean average precision (macro, over the classes with a positive image),
per-class AP and F1 at the thresholds, the exact-match share, and per-class thresholds tuned for F1 -
scikit-learn's ranking metrics over every image's sigmoid scores (gathered from every rank)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as D
from .evaluate import forward, usable_batches

DEFAULT_THRESHOLD = 0.5


def _percent(value: float) -> float:
    return round(100.0 * float(value), 4)


def tuned_thresholds(scores: np.ndarray, targets: np.ndarray) -> List[float]:
    """Per class, the score threshold with the best F1 on these images (the default where a class has
    no positive image: nothing to tune on)."""
    from sklearn.metrics import precision_recall_curve

    out = []
    for c in range(targets.shape[1]):
        if targets[:, c].sum() == 0:
            out.append(DEFAULT_THRESHOLD)
            continue
        precision, recall, cuts = precision_recall_curve(targets[:, c], scores[:, c])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        out.append(round(float(cuts[int(np.argmax(f1))]), 6))
    return out


@dataclass
class MultilabelResult:
    loss: float
    mAP: float  # percent
    ap: List[Optional[float]]  # per class, percent; None for a class no image has
    f1: List[float]  # per class at ``thresholds``, percent
    thresholds: List[float]  # what F1 and the exact-match share were computed at
    tuned: List[float]  # per-class thresholds that maximise F1 here
    exact_match: float  # percent of images whose predicted label set is exactly right
    count: int
    skipped: int = 0
    nonfinite: int = 0

    @property
    def score(self) -> float:
        """What a training run keeps its best checkpoint by."""
        return self.mAP

    def to_dict(self, classes: Sequence[str]) -> dict:
        return {
            "task": "multilabel",
            "loss": self.loss,
            "mAP": self.mAP,
            "exact_match": self.exact_match,
            "images": self.count,
            "skipped": self.skipped,
            "nonfinite_outputs": self.nonfinite,
            "per_class_ap": dict(zip(classes, self.ap)),
            "per_class_f1": dict(zip(classes, self.f1)),
            "thresholds": dict(zip(classes, self.thresholds)),
            "tuned_thresholds": dict(zip(classes, self.tuned)),
        }


def multilabel_metrics(
    scores: np.ndarray, targets: np.ndarray, thresholds: Optional[Sequence[float]] = None
) -> MultilabelResult:
    """The metrics of sigmoid ``scores`` (N, C) against multi-hot ``targets`` (loss left at 0)."""
    from sklearn.metrics import average_precision_score, f1_score

    classes = targets.shape[1]
    cuts = np.asarray(thresholds if thresholds is not None else [DEFAULT_THRESHOLD] * classes, dtype=np.float64)
    truth = targets > 0.5
    ap: List[Optional[float]] = [
        _percent(average_precision_score(truth[:, c], scores[:, c])) if truth[:, c].any() else None
        for c in range(classes)
    ]
    known = [a for a in ap if a is not None]
    predicted = scores >= cuts[None, :]
    f1 = f1_score(truth, predicted, average=None, zero_division=0.0) if len(scores) else np.zeros(classes)
    return MultilabelResult(
        loss=0.0,
        mAP=round(float(np.mean(known)), 4) if known else 0.0,
        ap=ap,
        f1=[_percent(v) for v in f1],
        thresholds=[float(c) for c in cuts],
        tuned=tuned_thresholds(scores, targets) if len(scores) else [DEFAULT_THRESHOLD] * classes,
        exact_match=_percent((predicted == truth).all(1).mean()) if len(scores) else 0.0,
        count=len(scores),
    )


def _gather(array: np.ndarray, info: D.DistInfo) -> np.ndarray:
    if not info.enabled:
        return array
    import torch.distributed as dist

    parts: List[Optional[np.ndarray]] = [None] * info.world
    dist.all_gather_object(parts, array)
    return np.concatenate([p for p in parts if p is not None and len(p)] or [array[:0]])


@torch.no_grad()
def evaluate_multilabel(
    model: nn.Module,
    batches: Iterable,
    num_classes: int,
    device: torch.device,
    amp: str = "bf16",
    channels_last: bool = True,
    dist_info: Optional[D.DistInfo] = None,
    on_skipped: Optional[Callable[[list], None]] = None,
    thresholds: Optional[Sequence[float]] = None,
) -> MultilabelResult:
    """Run ``model`` over ``batches`` of (images, multi-hot targets[, skipped messages]). An image whose
    logits are not finite scores 0 for every class (it finds none of its labels) and is counted."""
    info = dist_info or D.DistInfo()
    was_training = model.training
    model.eval()
    scores, targets = [], []
    loss_sum, nonfinite, skipped = 0.0, 0, [0]
    for x, y in usable_batches(batches, skipped, on_skipped):
        logits, y = forward(model, x, device, amp, channels_last), y.to(device).float()
        finite = torch.isfinite(logits).all(1)
        nonfinite += int((~finite).sum())
        if bool(finite.any()):
            loss_sum += float(F.binary_cross_entropy_with_logits(logits[finite], y[finite], reduction="sum"))
        prob = torch.where(finite[:, None], torch.sigmoid(torch.nan_to_num(logits)), torch.zeros_like(logits))
        scores.append(prob.cpu().numpy())
        targets.append(y.cpu().numpy())
    model.train(was_training)
    empty = np.zeros((0, num_classes), dtype=np.float32)
    all_scores = _gather(np.concatenate(scores) if scores else empty, info)
    all_targets = _gather(np.concatenate(targets) if targets else empty, info)
    loss_sum, skipped_files, nonfinite = D.all_sum([loss_sum, skipped[0], nonfinite], info)
    result = multilabel_metrics(all_scores, all_targets, thresholds)
    finite_images = max(1, len(all_scores) - int(nonfinite))
    result.loss = loss_sum / (finite_images * num_classes)
    result.skipped, result.nonfinite = int(skipped_files), int(nonfinite)
    return result
