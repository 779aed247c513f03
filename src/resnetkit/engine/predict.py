"""Batch prediction over image files: every readable file gets its top-k, every other file an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..data.decode import ImageDecodeError, load_image
from ..data.transforms import Preprocess


@dataclass
class Prediction:
    path: str
    top: List[Tuple[str, float]] = field(default_factory=list)  # (class name, probability)
    error: Optional[str] = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "top": [{"class": c, "prob": round(p, 6)} for c, p in self.top]}


def top_classes(logits: torch.Tensor, classes: Optional[Sequence[str]], topk: int) -> List[List[Tuple[str, float]]]:
    """Per row of ``logits``: the ``topk`` (class name, probability) pairs, most likely first."""
    probs = logits.float().softmax(dim=1)
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [
        [(classes[i] if classes and i < len(classes) else str(i), float(v)) for v, i in zip(vs, ids)]
        for vs, ids in zip(values.tolist(), indices.tolist())
    ]


def _chunks(items: List[Path], size: int) -> Iterator[List[Path]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def predict_files(
    model: nn.Module,
    paths: Iterable[Path],
    preprocess: Preprocess,
    classes: Optional[Sequence[str]] = None,
    topk: int = 5,
    batch_size: int = 32,
    device: Optional[torch.device] = None,
) -> Iterator[Prediction]:
    """Yield one Prediction per path, in order. Undecodable files yield an error, not an exception."""
    device = device or torch.device("cpu")
    model.eval().to(device)
    transform = preprocess.transform(int(getattr(model, "in_chans", 3)))
    for chunk in _chunks(list(paths), batch_size):
        tensors, results = [], []
        for path in chunk:
            try:
                tensors.append(transform(load_image(path, preprocess.resize_size)))
                results.append(Prediction(str(path)))
            except ImageDecodeError as exc:
                results.append(Prediction(str(path), error=str(exc)))
        if tensors:
            logits = model(torch.stack(tensors).to(device)).float().cpu()
            finite = iter(torch.isfinite(logits).all(1).tolist())
            tops = iter(top_classes(torch.nan_to_num(logits), classes, topk))
            for r in results:
                if r.error is None:
                    r.top = next(tops)
                    if not next(finite):
                        r.top, r.error = [], f"{r.path}: the model's output is not finite (NaN or Inf)"
        yield from results
