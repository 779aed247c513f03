"""The run directory: its policy (never silently overwritten) and everything written into it.

One writer: the trainer's rank 0 holds the directory's lock for the life of the run (a second process
is refused, naming the first) and writes every file through this class (configuration, class names,
checkpoints, metrics and plots, final weights, summary, sample images)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..card import ModelCard
from ..errors import BadFile, InvalidOption
from ..fileio import LOCK_FILES, OneWriter, check_output_file, make_dir, write_text
from ..weights.io import save_safetensors
from .checkpoint import save_checkpoint
from .report import write_curves, write_metrics_csv

# Files a training run writes; --exist-ok removes them first so two runs never mix.
RUN_OUTPUTS = (
    "config.json",
    "classes.json",
    "metrics.csv",
    "curves.png",
    "last.pt",
    "best.pt",
    "model.safetensors",
    "model_ema.safetensors",
    "summary.json",
    "eval.json",
    "confusion.png",
    "samples",
    "tensorboard",
)


def next_free(path: Path) -> Path:
    """``path`` with the smallest numeric suffix that does not exist yet (runs/train -> runs/train2)."""
    n = 2
    while True:
        candidate = path.with_name(f"{path.name}{n}")
        if not candidate.exists():
            return candidate
        n += 1


class RunDirectory:
    """A training run's directory."""

    def __init__(self, path: Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.lock = OneWriter(self.path, "run directory")

    def claim(self, create: bool = True) -> None:
        """Take the directory's lock (the writer only), or Busy naming the process that holds it.
        ``create=False`` (a resume) takes it only if the directory exists."""
        if self.writer:
            if self.path.exists() and not self.path.is_dir():
                raise BadFile(f"out {self.path} is an existing file, not a directory; choose another out", field="out")
            if create or self.path.is_dir():
                self.lock.acquire()

    def release(self) -> None:
        self.lock.release()

    def prepare_new(self, exist_ok: bool) -> List[str]:
        """Check that a new run may use this directory, before any work is done: it must be absent
        or empty, unless ``exist_ok`` (then the previous run's outputs are removed, and named).
        Returns what was removed."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise BadFile(f"out {path} is an existing file, not a directory; choose another out", field="out")
        check_output_file(path / "config.json", "run directory file")
        removed: List[str] = []
        if path.is_dir() and any(p.name not in LOCK_FILES for p in path.iterdir()):
            if not exist_ok:
                raise BadFile(
                    f"out {path} already holds a run; use resume {path} to continue it, exist_ok to replace "
                    f"it, or a new directory such as out {next_free(path)}",
                    field="out",
                    related=("resume", "exist_ok"),
                )
            if self.writer:
                for name in RUN_OUTPUTS:
                    target = path / name
                    if target.is_dir():
                        shutil.rmtree(target)
                        removed.append(name)
                    elif target.exists():
                        target.unlink()
                        removed.append(name)
        if self.writer:
            make_dir(path, "run directory")
        return removed

    # ---- files -------------------------------------------------------------------------------------

    def write_json(self, name: str, obj: Any) -> None:
        if self.writer:
            write_text(self.path / name, json.dumps(obj, indent=2) + "\n", what=name)

    def write_start(self, config: Dict[str, Any], classes: List[str]) -> None:
        self.write_json("config.json", config)
        self.write_json("classes.json", classes)

    def save_checkpoint(self, name: str, **parts: Any) -> None:
        if self.writer:
            save_checkpoint(self.path / name, **parts)

    def write_reports(self, history: List[dict]) -> None:
        if self.writer:
            write_metrics_csv(history, self.path / "metrics.csv")
            write_curves(history, self.path / "curves.png")

    def write_weights(self, name: str, state: Dict[str, torch.Tensor], card: ModelCard) -> None:
        if self.writer:
            save_safetensors(state, self.path / name, card.but(format="safetensors"))

    def write_samples(self, count: int = 8, multilabel: bool = False, image_size: int = 32) -> Optional[Path]:
        """A few validation digits (multi-label: digit grids) as PNG files, to try ``resnetkit predict``
        on real image files."""
        if not self.writer:
            return None
        if multilabel:
            from ..data.multilabel import digits_grid_images

            digits_grid_images(self.path / "samples", count=count, image_size=image_size)
        else:
            from ..data.datasets import digits_val_images

            digits_val_images(self.path / "samples", count=count)
        return self.path / "samples"


def run_directory_of(weights_source: str) -> Optional[Path]:
    """The training run a weights file belongs to (its directory holds config.json), if any."""
    path = Path(weights_source)
    for candidate in (path, path.parent):
        if candidate.is_dir() and (candidate / "config.json").is_file() and (candidate / "last.pt").exists():
            return candidate
    return None


def validation_images(run: Path, limit: int = 128) -> torch.Tensor | str:
    """A run's own validation data, as int8 calibration: the digits val split or CIFAR's test images
    as a tensor, or the folder of validation images (``DATA/val``, else ``DATA``) of a folder run."""
    from ..data.datasets import TensorImages, load_digits

    config = json.loads((run / "config.json").read_text())
    if config.get("data") is None:
        if config.get("task") == "multilabel":
            from ..data.multilabel import load_digits_grid

            val = load_digits_grid(image_size=int(config["image_size"])).val
        else:
            val = load_digits(image_size=int(config["image_size"])).val
        assert isinstance(val, TensorImages)
        return val.images[:limit]
    from ..data.cifar import load_cifar, parse

    cifar = parse(config["data"])
    if cifar is not None:
        images = load_cifar(*cifar).val
        assert isinstance(images, TensorImages)
        return images.images[:limit]
    from ..data.shards import is_shards

    if is_shards(config["data"]):  # the first images of the validation shards, decoded (the training shards unread)
        from ..card import Preprocess
        from ..data.shards import evaluation_shards
        from .evaluate import eval_batches

        pre = Preprocess(config["eval_resize"], config["eval_crop"], config["interpolation"])
        classes = json.loads((run / "classes.json").read_text())
        val = evaluation_shards(config["val_data"], classes, pre.transform(), pre.resize_size, "resnetkit")
        decoded: List[torch.Tensor] = []
        for x, _, _ in eval_batches(val, 64):
            decoded.append(x)
            if sum(len(d) for d in decoded) >= limit:
                break
        return torch.cat(decoded)[:limit]
    root = Path(config["data"])
    return str(root / "val" if (root / "val").is_dir() else root)


def calibration_source(given, weights_source: str, log=print):
    """int8 calibration images: ``given`` (a folder) if set, else the validation data of the training
    run the weights come from; refused when there is neither."""
    if given:
        return given
    run = run_directory_of(weights_source)
    if run is None:
        raise InvalidOption(
            "precision int8 needs calibration DIR with at least 32 representative images",
            field="precision",
            related=("calibration",),
        )
    log(f"calibrating on the validation data of the training run {run}")
    return validation_images(run)
