"""`resnetkit train`: train or fine-tune; with no --data, resnet18 on the bundled digits set."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from ..data.datasets import digits_val_images
from ..engine.config import CHOICES, RECIPES, TrainConfig, make_config
from ..engine.trainer import train

HELP = {
    "arch": "architecture (see `resnetkit models`)",
    "weights": "fine-tune from a catalog name, weights file or run directory (the head is replaced)",
    "freeze_backbone": "train the classifier only",
    "backbone_lr_scale": "backbone learning rate = lr x this (discriminative fine-tuning)",
    "data": "ImageFolder root: DIR/train/<class>/* and DIR/val/<class>/*, or DIR/<class>/* with --val-split",
    "val_split": "fraction of a single folder held out for validation",
    "batch_size": "global batch size (split across torchrun processes)",
    "amp": "mixed precision: bf16 (CPU and GPU), fp16 (GPU), none",
    "save_every_steps": "also checkpoint every N optimizer steps (mid-epoch resume)",
    "out": "run directory (default runs/<timestamp>-<arch>)",
    "deterministic": "deterministic algorithms: a killed and resumed run ends with identical weights",
    "quiet": "no progress bars, one line per epoch",
    "pad_crop": "in-memory data (digits): pad by N pixels (edge) and randomly crop back, per sample",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a model", description=__doc__,
        epilog="Every value of a --recipe preset can be overridden by its flag. "
        f"Recipes: {', '.join(RECIPES)}.",
    )
    p.add_argument("--recipe", choices=list(RECIPES), default="digits", help="preset of defaults (default: digits)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        kind = hints[f.name]
        args = dict(default=None, help=HELP.get(f.name, f"(default {f.default!r} or the recipe's)"))
        if kind is bool:
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **args)
            continue
        base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
        if f.name in CHOICES:
            args["choices"] = CHOICES[f.name]
        p.add_argument(_flag(f.name), type=base, metavar=f.name.upper(), **args)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "recipe"}
    if args.resume:
        given = {k: v for k, v in overrides.items() if v is not None}
        result = train(resume=Path(args.resume), resume_overrides=given)
    else:
        cfg = make_config(args.recipe, **overrides)
        result = train(cfg)
    if result.interrupted:
        return 130
    if not result.history:
        print("nothing to do: the run had already finished all its epochs", file=sys.stderr)
        return 0
    last = result.history[-1]
    summary = {
        "run_dir": str(result.run_dir),
        "final_val_acc1": round(last["val_acc1"], 3),
        "best_val_acc1": round(result.best_acc1, 3),
        "train_seconds": round(result.train_seconds, 1),
        "skipped_images": result.skipped_images,
    }
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if result.config is not None and result.config.data is None:
        # A few validation digits as PNG files, to try `resnetkit predict` on real image files.
        digits_val_images(result.run_dir / "samples", count=8)
    print(
        f"done: val acc@1 {last['val_acc1']:.2f}% (best {result.best_acc1:.2f}%) in {result.train_seconds:.1f}s "
        f"of training; {result.skipped_images} unreadable images skipped; outputs in {result.run_dir}/"
    )
    return 0
