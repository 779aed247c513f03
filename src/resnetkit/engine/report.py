"""Run outputs: metrics.csv, training curves and confusion-matrix plots (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Sequence

import torch

from ..fileio import atomic_path


def write_metrics_csv(history: List[dict], path: Path) -> None:
    if not history:
        return
    fields = list(dict.fromkeys(k for row in history for k in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for row in history:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _figure(**kwargs):
    """A matplotlib Figure that is not registered with pyplot: no GUI backend is touched and the
    process-wide backend (a notebook's, say) is left alone."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def write_curves(history: List[dict], path: Path) -> None:
    """Loss and accuracy per epoch, train and val side by side."""
    if not history:
        return
    epochs = [r["epoch"] for r in history]
    fig = _figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], marker="o", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    multilabel = "val_mAP" in history[0]
    key, name = ("val_mAP", "mAP") if multilabel else ("val_acc1", "acc@1")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], marker="o", label="train" + (" exact" if multilabel else ""))
    ax_acc.plot(epochs, [r[key] for r in history], marker="o", label=f"val {name}")
    if f"ema_{key}" in history[0]:
        ax_acc.plot(epochs, [r[f"ema_{key}"] for r in history], marker="o", label=f"EMA val {name}")
    ax_acc.set(xlabel="epoch", ylabel="%", title="mAP" if multilabel else "accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path, "plot") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_confusion(confusion: torch.Tensor, classes: Sequence[str], path: Path) -> None:
    """Confusion matrix as a PNG heat map (rows: true class, columns: predicted), row-normalised."""
    n = len(classes)
    norm = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    size = min(20, max(5, 0.45 * n + 2))
    fig = _figure(figsize=(size, size))
    ax = fig.subplots()
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 50:
        ax.set_xticks(range(n), labels=classes, rotation=90)
        ax.set_yticks(range(n), labels=classes)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if confusion[i, j]:
                        ax.text(
                            j,
                            i,
                            int(confusion[i, j]),
                            ha="center",
                            va="center",
                            color="white" if norm[i, j] > 0.5 else "black",
                            fontsize=8,
                        )
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path, "plot") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
