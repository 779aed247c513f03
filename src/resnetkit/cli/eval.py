"""`resnetkit eval`: top-1/top-5, loss, per-class accuracy and a confusion matrix for a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional, Tuple

from ..deploy.loading import is_exported
from ..errors import InvalidOption
from .common import (
    add_runtime_args,
    add_threshold_arg,
    add_tta_arg,
    add_weights_args,
    data_root,
    int_at_least,
    labelled_data,
    load_for_inference,
    pick_device,
    print_skipped,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a labelled data set", description=__doc__)
    add_weights_args(p)
    p.add_argument(
        "--data",
        "--data-path",
        dest="data",
        help="ImageFolder root (uses DIR/val if present), or cifar10:DIR / cifar100:DIR (the test images); default: "
        "the validation data of the training run the weights come from, else the digits val split",
    )
    p.add_argument("-b", "--batch-size", type=int_at_least(1), default=64, help="images per batch (default 64)")
    p.add_argument("-j", "--workers", type=int_at_least(0), default=2, help="image decoding processes (default 2)")
    p.add_argument(
        "--amp",
        choices=["bf16", "none"],
        default="none",
        help="bf16 is faster on CPUs with bf16 support; none (default) reproduces fp32 numbers exactly",
    )
    add_runtime_args(p, "the validation data of the training run the weights come from", backend_default="pytorch")
    add_tta_arg(p)
    p.add_argument(
        "--labels",
        metavar="CSV",
        help="a multi-label model's data: the image,labels file (paths relative to --data; its val rows when it has "
        "a split column; default DATA/labels.csv)",
    )
    add_threshold_arg(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write eval.json and confusion.png here (default: into the training run the weights come from; "
        "for other weights nothing is written unless --out is given)",
    )
    p.add_argument("--confusion", metavar="PNG", help="the confusion matrix image's path (default: DIR/confusion.png)")
    p.add_argument("--exist-ok", action="store_true", help="replace eval.json / confusion.png already in --out")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--decode", choices=["resnetkit", "reference"], default="resnetkit",
        help="how --data images are decoded: resnetkit (default: EXIF orientation, alpha on white) or reference "
        "(Image.open().convert('RGB'), as torchvision's and timm's reference scripts)",
    )  # fmt: skip
    p.set_defaults(handler=run)


class Reports:
    """Where eval's files go: the training run the weights belong to (its own outputs, written under
    its lock), else only where --out / --confusion say, never over an existing file without
    --exist-ok. Decided before any work is done."""

    def __init__(self, args: argparse.Namespace, weights_source: str) -> None:
        from ..engine.rundir import run_directory_of
        from ..errors import BadFile
        from ..fileio import OneWriter, check_output_dir, check_output_file

        self.lock = None
        run = run_directory_of(weights_source)
        folder = Path(args.out) if args.out else run
        if args.out:
            check_output_dir(args.out, "--out folder")
        self.json = folder / "eval.json" if folder is not None else None
        self.png = (
            Path(args.confusion) if args.confusion else (folder / "confusion.png" if folder is not None else None)
        )
        if self.png is not None:
            check_output_file(self.png, "--confusion image")
        if folder is not None and not args.out:  # the run's own eval.json: replaced, under the run's lock
            assert run is not None
            self.lock = OneWriter(run, "run directory").acquire()
            return
        existing = [p for p in (self.json, self.png) if p is not None and p.exists()]
        if existing and not args.exist_ok:
            raise BadFile(f"{existing[0]} already exists; pass --exist-ok to replace it, or choose another --out")

    def write(self, report: dict, confusion, names) -> None:
        """eval.json, and the confusion matrix (none for a multi-label model: ``confusion`` None)."""
        from ..engine.report import write_confusion
        from ..fileio import write_text

        if confusion is None:
            self.png = None
        if self.png is not None:
            write_confusion(confusion, names, self.png)
            report["confusion_png"] = str(self.png)
        if self.json is not None:
            write_text(self.json, json.dumps(report, indent=1) + "\n", what="eval report")

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def saved(self) -> str:
        files = [str(p) for p in (self.json, self.png) if p is not None]
        return (
            f"wrote {', '.join(files)}" if files else "nothing saved (pass --out DIR for eval.json and confusion.png)"
        )


def run(args: argparse.Namespace) -> int:
    """Under torchrun each rank evaluates its share of the images and rank 0 reports the totals."""
    from ..engine import distributed as D

    root = data_root(args.data, args.labels)
    info = D.setup()
    try:
        model = load_for_inference(args)
        reports = Reports(args, model.card.source or args.weights) if info.is_main else None
        try:
            return evaluate_and_report(args, root, model, reports, info)
        finally:
            if reports is not None:
                reports.close()
    finally:
        D.teardown(info)


def deployed(args: argparse.Namespace, model, device):
    """(what evaluates, how it is said): the model itself (PyTorch, exact: the default for fp32), or the
    runner --precision / --backend ask for - the one predict and serve run, from the same cache of
    optimized models - so the accuracy of the deployed int8 or bf16 model is measured, not assumed."""
    import sys

    from ..deploy.formats import preferred_backend
    from ..errors import InvalidOption

    backend = args.backend or ("pytorch" if args.precision == "fp32" else preferred_backend(None, args.precision))
    if backend == "pytorch" and args.precision == "fp32":
        return model, "PyTorch"
    if is_exported(model):
        raise InvalidOption(
            f"{args.weights} is an exported model: it runs as it is (drop --precision/--backend; export another "
            "precision with `resnetkit export --precision`)"
        )
    if args.amp != "none":
        raise InvalidOption(
            "--amp is PyTorch's autocast; with --precision or --backend drop it (bf16: --precision bf16)"
        )
    if device.type != "cpu":
        raise InvalidOption("--precision/--backend run on the CPU runtimes; add --device cpu", field="device")
    from ..deploy.calibration import lazy_calibration
    from ..deploy.optimize import optimize
    from ..engine.rundir import calibration_source

    card = model.card
    calibration = None
    if args.precision == "int8":
        say = lambda line: print(f"eval: {line}", file=sys.stderr)  # noqa: E731
        source = calibration_source(args.calibration, card.source or args.weights, say)
        calibration = lazy_calibration(source, card.preprocess, card.in_chans)
    runner = optimize(
        model, args.precision, calibration=calibration, backend=backend, input_size=card.input_size,
        batch_size=args.batch_size, log=lambda line: print(f"eval: {line}", file=sys.stderr),
        calibration_id=getattr(calibration, "identity", None),
    )  # fmt: skip
    return runner, f"{args.precision} on {runner.choice.backend}"  # type: ignore[union-attr]


def evaluate_and_report(args, root, model, reports: Optional[Reports], info) -> int:
    from ..engine.evaluate import eval_batches, evaluate
    from ..progress import track_batches

    card = model.card
    if card.multilabel:
        return evaluate_multilabel_and_report(args, root, model, reports, info)
    if args.threshold is not None or args.labels is not None:
        raise InvalidOption(
            f"--{'threshold' if args.threshold is not None else 'labels'} applies to multi-label models; "
            f"{args.weights} gives one label an image"
        )
    classes = list(card.classes) if card.classes else None
    dataset, data_classes, source = labelled_data(root, model, card.preprocess, classes, args.decode)
    device = info.device if info.enabled and not is_exported(model) else pick_device(args.device, model)
    model.to(device)
    runner, ran_on = deployed(args, model, device)
    if args.tta != "none":
        from ..deploy.fused import with_tta

        runner, ran_on = with_tta(runner, args.tta), f"{ran_on}, tta {args.tta}"
    batches = eval_batches(dataset, args.batch_size, args.workers, info.rank, info.world)
    share = -(-len(dataset) // info.world)  # type: ignore[arg-type]  # this rank's images, about
    result = evaluate(
        runner,
        track_batches(batches, share, "eval", quiet=args.json or not info.is_main),
        model.num_classes,
        device,
        amp=args.amp,
        channels_last=False,
        on_skipped=print_skipped,
        dist_info=info,
    )
    if reports is None:  # another rank reports
        return 0
    names = list(classes or data_classes)
    report = {"weights": card.source, "data": source, "ran_on": ran_on, "tta": args.tta, **result.to_dict(names)}
    reports.write(report, result.confusion, names)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{source}: {result.count} images, acc@1 {result.acc1:.2f}%  acc@5 {result.acc5:.2f}%  loss {result.loss:.4f}"
        + (f"  ({ran_on})" if ran_on != "PyTorch" else "")
        + (f"  ({result.skipped} unreadable skipped)" if result.skipped else "")
    )
    if result.nonfinite:
        print(f"warning: {result.nonfinite} images gave non-finite outputs (NaN or Inf): counted as wrong")
    worst = sorted(zip(result.per_class_acc, names))[:5]
    print("lowest per-class acc@1: " + ", ".join(f"{n} {a:.1f}%" for a, n in worst))
    print(reports.saved())
    return 0


def multilabel_data(args, root, model) -> Tuple[Any, str]:
    """(dataset, its description) for a multi-label model: --data with its labels file, else the
    validation split of the run the weights come from."""
    from ..data.multilabel import DIGITS_GRID, labelled_folder
    from ..engine.config import TrainConfig
    from ..engine.setup import load_data
    from .common import run_data

    card = model.card
    if root is None:
        own = run_data(model)
        if (own is None or own.get("task") != "multilabel") and card.data == DIGITS_GRID:
            from ..data.multilabel import load_digits_grid  # an export of a digits-grid run

            return load_digits_grid(card.preprocess.crop_size).val, "digits grid val split"
        if own is None or own.get("task") != "multilabel":
            raise InvalidOption(
                f"{args.weights} is a multi-label model: evaluate it on --data DIR --labels FILE (image,labels rows)",
                field="data",
            )
        split = load_data(TrainConfig.from_dict(own))
        return split.val, f"the validation split of {split.source}"
    given = getattr(args, "labels", None)  # bench has no --labels: DATA/labels.csv
    labels = Path(given) if given else Path(root) / "labels.csv"
    pre = card.preprocess
    dataset = labelled_folder(
        Path(root), labels, list(card.classes or map(str, range(card.num_classes))),
        pre.transform(card.in_chans), pre.resize_size, getattr(args, "decode", "resnetkit"),
    )  # fmt: skip
    return dataset, f"{root} ({labels.name})"


def evaluate_multilabel_and_report(args, root, model, reports: Optional[Reports], info) -> int:
    """mAP, per-class AP and F1, at the model's tuned thresholds (or --threshold)."""
    from ..engine.evaluate import eval_batches
    from ..engine.multilabel import evaluate_multilabel
    from ..progress import track_batches

    card = model.card
    dataset, source = multilabel_data(args, root, model)
    device = info.device if info.enabled and not is_exported(model) else pick_device(args.device, model)
    model.to(device)
    runner, ran_on = deployed(args, model, device)
    if args.tta != "none":
        from ..deploy.fused import with_tta

        runner, ran_on = with_tta(runner, args.tta), f"{ran_on}, tta {args.tta}"
    thresholds = [args.threshold] * card.num_classes if args.threshold is not None else card.thresholds
    batches = eval_batches(dataset, args.batch_size, args.workers, info.rank, info.world)
    share = -(-len(dataset) // info.world)  # type: ignore[arg-type]
    result = evaluate_multilabel(
        runner, track_batches(batches, share, "eval", quiet=args.json or not info.is_main), card.num_classes,
        device, amp=args.amp, channels_last=False, dist_info=info, on_skipped=print_skipped, thresholds=thresholds,
    )  # fmt: skip
    if reports is None:
        return 0
    names = [card.class_name(i) for i in range(card.num_classes)]
    report = {"weights": card.source, "data": source, "ran_on": ran_on, "tta": args.tta, **result.to_dict(names)}
    reports.write(report, None, names)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{source}: {result.count} images, mAP {result.mAP:.2f}%  exact match {result.exact_match:.2f}%  "
        f"loss {result.loss:.4f}"
        + (f"  ({ran_on})" if ran_on != "PyTorch" else "")
        + (f"  ({result.skipped} unreadable skipped)" if result.skipped else "")
    )
    if result.nonfinite:
        print(f"warning: {result.nonfinite} images gave non-finite outputs (NaN or Inf): they found no label")
    worst = sorted((ap, n) for ap, n in zip(result.ap, names) if ap is not None)[:5]
    print("lowest per-class AP: " + ", ".join(f"{n} {ap:.1f}%" for ap, n in worst))
    print(reports.saved())
    return 0
