"""`resnetkit eval`: top-1/top-5, loss, per-class accuracy and a confusion matrix for a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.datasets import FolderImages, collate, find_images, class_names, load_digits
from ..engine.evaluate import evaluate
from ..engine.report import write_confusion
from ..errors import ResnetkitError
from .common import add_weights_args, load_for_inference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a labelled data set", description=__doc__)
    add_weights_args(p)
    p.add_argument("--data", help="ImageFolder root (uses DIR/val if present); default: the digits val split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--amp", choices=["bf16", "none"], default="none",
                   help="bf16 is faster on CPUs with bf16 support; none reproduces fp32 numbers exactly")
    p.add_argument("--confusion", metavar="PNG", help="confusion matrix image (default: next to the weights or ./)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ResnetkitError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, loaded, preprocess, classes = load_for_inference(args)
    if args.data is None:
        split = load_digits(image_size=preprocess.crop_size)
        data_classes = split.classes
        val = split.val
        batches = (val.batch(list(range(i, min(i + args.batch_size, len(val))))) + ([],)
                   for i in range(0, len(val), args.batch_size))
        source = "digits val split"
    else:
        root = Path(args.data)
        root = root / "val" if (root / "val").is_dir() else root
        data_classes = class_names(root)
        dataset = FolderImages(find_images(root), preprocess.transform())
        if len(dataset) == 0:
            raise ResnetkitError(f"no image files under {root}")
        batches = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate)
        source = str(root)
    num_classes = loaded.num_classes
    if classes is not None and list(classes) != list(data_classes):
        if len(classes) == len(data_classes):
            print("warning: the data's class folders are named differently from the model's classes; "
                  "matching them by sorted order")
        else:
            raise ResnetkitError(
                f"the model has {num_classes} classes but {source} has {len(data_classes)}; "
                "evaluate on data with the model's classes"
            )
    elif num_classes != len(data_classes):
        raise ResnetkitError(f"the model has {num_classes} outputs but {source} has {len(data_classes)} classes")
    result = evaluate(model, batches, num_classes, torch.device("cpu"), amp=args.amp, channels_last=False,
                      on_skipped=lambda msgs: [print(f"skipped: {m}") for m in msgs])
    names = list(classes or data_classes)
    # Reports go into the training run directory when evaluating a run, else the current directory.
    source_dir = Path(loaded.source).parent
    out_dir = source_dir if (source_dir / "config.json").is_file() else Path(".")
    confusion_path = Path(args.confusion) if args.confusion else out_dir / "confusion.png"
    write_confusion(result.confusion, names, confusion_path)
    report = {"weights": loaded.source, "data": source, **result.to_dict(names), "confusion_png": str(confusion_path)}
    (out_dir / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{source}: {result.count} images, acc@1 {result.acc1:.2f}%  acc@5 {result.acc5:.2f}%  loss {result.loss:.4f}"
          + (f"  ({result.skipped} unreadable skipped)" if result.skipped else ""))
    worst = sorted(zip(result.per_class_acc, names))[:5]
    print("lowest per-class acc@1: " + ", ".join(f"{n} {a:.1f}%" for a, n in worst))
    print(f"confusion matrix: {confusion_path}")
    return 0
