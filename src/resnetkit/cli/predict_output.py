"""What `predict` prints, and where its int8 calibration comes from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch


def calibration_for(
    args: argparse.Namespace, model: Any, sample: Callable[[], torch.Tensor], say
) -> Optional[Callable]:
    """int8 calibration images: --calibration DIR, else the training run's validation data, else the
    first readable inputs (said so)."""
    if args.precision != "int8":
        return None
    card = model.card
    from ..deploy.calibration import lazy_calibration
    from ..engine.rundir import run_directory_of, validation_images

    if args.calibration:
        return lazy_calibration(args.calibration, card.preprocess, card.in_chans)
    run = run_directory_of(card.source or args.weights)
    if run is not None:
        say(f"predict: calibrating int8 on the validation data of the training run {run}")
        return lazy_calibration(validation_images(run), card.preprocess, card.in_chans)
    say(
        "predict: int8 calibrated on the first 64 readable inputs (no training run's validation data here: "
        "pass --calibration DIR for a representative set); an int8 model of these weights calibrated so by an "
        "earlier job is reused from the cache"
    )

    def first_inputs() -> torch.Tensor:
        return sample()

    # The cache of optimized models keys this calibration by its kind, not by the images: a second job
    # on new photos reuses the first one's int8 model instead of quantizing again (the message says so).
    first_inputs.identity = "the first 64 readable inputs of a job"  # type: ignore[attr-defined]
    return first_inputs


class Printer:
    """Rows to standard output (text, or --json) when there is no --out table, and Grad-CAM overlays."""

    def __init__(self, args: argparse.Namespace, model: Any, device) -> None:
        self.args, self.model, self.device = args, model, device
        self.multilabel = model.card.multilabel
        self.predictor = None

    def emit(self, rows: List[Dict[str, Any]]) -> None:
        if not self.args.out:
            for row in rows:
                print(self.text(row), flush=True)
        if self.args.cam:
            self.write_cams(rows)

    def text(self, row: Dict[str, Any]) -> str:
        path, error = row["path"], row.get("error")
        if self.args.json:
            if error is not None:
                return json.dumps({"path": path, "error": error})
            top = [{"class": c, "prob": round(p, 6)} for c, p in zip(row["top_classes"], row["top_probs"])]
            # A multi-label model's answer is the labels above their thresholds (maybe none), not a ranking.
            out: Dict[str, Any] = {"path": path, "labels" if self.multilabel else "top": top}
            for key in ("embedding", "logits"):
                if key in row:
                    out[key] = row[key]
            return json.dumps(out)
        if error is not None:
            return f"{path}: ERROR {error.removeprefix(path + ': ')}"
        answer = "  ".join(f"{c} {p:.1%}" for c, p in zip(row["top_classes"], row["top_probs"]))
        if self.multilabel:
            return f"{path}: labels " + (answer or "(none above the threshold)")
        return f"{path}: {answer}"

    def write_cams(self, rows: List[Dict[str, Any]]) -> None:
        from .predict_cam import write_cam

        for row in rows:
            if row.get("error") is None:
                written = write_cam(self.model, Path(row["path"]), Path(self.args.cam), self.device)
                if not self.args.json and not self.args.out:
                    print(f"  Grad-CAM: {written}", flush=True)

    def on_chunk(self, n: int) -> None:
        if self.args.verbose:
            print(f"predict: chunk {n} committed to {self.args.out}", file=sys.stderr, flush=True)
