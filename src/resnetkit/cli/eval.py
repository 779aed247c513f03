"""`resnetkit eval`: top-1/top-5, loss, per-class accuracy and a confusion matrix for a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Tuple

from .common import add_weights_args, int_at_least, load_for_inference, pick_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a labelled data set", description=__doc__)
    add_weights_args(p)
    p.add_argument(
        "--data",
        "--data-path",
        dest="data",
        help="ImageFolder root (uses DIR/val if present); default: the digits val split",
    )
    p.add_argument("-b", "--batch-size", type=int_at_least(1), default=64, help="images per batch (default 64)")
    p.add_argument("-j", "--workers", type=int_at_least(0), default=2, help="image decoding processes (default 2)")
    p.add_argument(
        "--amp",
        choices=["bf16", "none"],
        default="none",
        help="bf16 is faster on CPUs with bf16 support; none (default) reproduces fp32 numbers exactly",
    )
    p.add_argument(
        "--confusion", metavar="PNG", help="confusion matrix image (default: confusion.png in the run directory, or ./)"
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=run)


def print_skipped(messages: list) -> None:
    for message in messages:
        print(f"skipped: {message}")


def data_root(data: Optional[str]) -> Optional[Path]:
    """The ImageFolder root ``--data`` names (DIR/val when present), checked; None for the digits."""
    from ..data.datasets import class_names

    if data is None:
        return None
    root = Path(data)
    root = root / "val" if (root / "val").is_dir() else root
    class_names(root)  # says what is wrong with the folder before any model is loaded
    return root


def labelled_data(root: Optional[Path], model, preprocess, classes) -> Tuple[object, List[str], str]:
    """(dataset, class names, description) of the evaluation data: the folder at ``root`` or the
    digits val split, its classes matched against the model's (refused when they cannot be)."""
    from ..data.datasets import FolderImages, class_names, find_images, load_digits
    from ..errors import BadFile, InvalidOption

    if root is None:
        split = load_digits(image_size=preprocess.crop_size)
        data_classes, dataset, source = split.classes, split.val, "digits val split"
    else:
        data_classes = class_names(root)
        dataset = FolderImages(find_images(root), preprocess.transform(), short_side=preprocess.resize_size)
        if len(dataset) == 0:
            raise BadFile(f"no image files under {root}")
        source = str(root)
    num_classes = model.num_classes
    if classes is not None and list(classes) != list(data_classes):
        if len(classes) == len(data_classes):
            print(
                "warning: the data's class folders are named differently from the model's classes; "
                "matching them by sorted order"
            )
        else:
            raise InvalidOption(
                f"the model has {num_classes} classes but {source} has {len(data_classes)}; "
                "evaluate on data with the model's classes"
            )
    elif num_classes != len(data_classes):
        raise InvalidOption(f"the model has {num_classes} outputs but {source} has {len(data_classes)} classes")
    return dataset, list(data_classes), source


def run(args: argparse.Namespace) -> int:

    from ..engine.evaluate import eval_batches, evaluate
    from ..engine.report import write_confusion
    from ..fileio import check_output_file, write_text

    if args.confusion:
        check_output_file(args.confusion, "--confusion image")
    root = data_root(args.data)
    model, loaded, preprocess, classes = load_for_inference(args)
    dataset, data_classes, source = labelled_data(root, model, preprocess, classes)
    num_classes = model.num_classes
    device = pick_device(args.device, model)
    model.to(device)
    result = evaluate(
        model,
        eval_batches(dataset, args.batch_size, args.workers),
        num_classes,
        device,
        amp=args.amp,
        channels_last=False,
        on_skipped=print_skipped,
    )
    names = list(classes or data_classes)
    # Reports go into the training run directory when evaluating a run, else the current directory.
    source_dir = Path(loaded.source).parent
    out_dir = source_dir if (source_dir / "config.json").is_file() else Path(".")
    confusion_path = Path(args.confusion) if args.confusion else out_dir / "confusion.png"
    write_confusion(result.confusion, names, confusion_path)
    report = {"weights": loaded.source, "data": source, **result.to_dict(names), "confusion_png": str(confusion_path)}
    write_text(out_dir / "eval.json", json.dumps(report, indent=1) + "\n", what="eval report")
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{source}: {result.count} images, acc@1 {result.acc1:.2f}%  acc@5 {result.acc5:.2f}%  loss {result.loss:.4f}"
        + (f"  ({result.skipped} unreadable skipped)" if result.skipped else "")
    )
    worst = sorted(zip(result.per_class_acc, names))[:5]
    print("lowest per-class acc@1: " + ", ".join(f"{n} {a:.1f}%" for a, n in worst))
    print(f"confusion matrix: {confusion_path}")
    return 0
