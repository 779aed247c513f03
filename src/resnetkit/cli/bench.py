"""`resnetkit bench`: inference speed side by side in one process; with --weights, one row per
deployable (format, precision) with its file size, accuracy and agreement."""

from __future__ import annotations

import argparse
import json
import sys

from ..deploy.modes import MODES
from .common import add_weights_args, data_root, int_at_least, labelled_data, load_for_inference, print_skipped


def _int_list(text: str):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,16") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers, e.g. 1,16")
    return values


def _modes(text: str):
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {', '.join(bad) or text!r}; choose from {', '.join(MODES)}")
    if "eager" not in modes:
        modes.insert(0, "eager")  # ratios are to eager
    return modes


def _formats(text: str) -> list:
    """argparse type: a comma-separated list of the table's formats (bench --weights rows)."""
    from ..deploy.compare import table_rows

    known = list(dict.fromkeys(fmt for fmt, _ in table_rows()))
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in chosen if f not in known]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or text!r}; choose from {', '.join(known)}"
        )
    return chosen


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench",
        help="measure inference speed (and, with --weights, accuracy) of every deployment path",
        description="ARCH: every mode on random weights (speed does not depend on them). --weights SRC: "
        "every format x precision exported from SRC (or SRC itself when it is an exported file), with file "
        "size, acc@1 on --data (default: the validation data of the run the weights come from, else the digits "
        "val split), agreement with fp32, latency and throughput.",
    )
    b.add_argument("architecture", nargs="?", help="architecture to time on random weights (or use --weights)")
    add_weights_args(b, required=False)
    b.add_argument(
        "--data",
        "--data-path",
        dest="data",
        help="with --weights: labelled ImageFolder, or cifar10:DIR / cifar100:DIR, for acc@1",
    )
    b.add_argument(
        "--calibration", metavar="DIR", help="with --weights: int8 calibration images (default: the val data)"
    )
    b.add_argument(
        "--max-images", type=int_at_least(32), default=500, help="with --weights: val images used (default 500)"
    )
    b.add_argument(
        "-b",
        "--batch-size",
        type=_int_list,
        default=None,
        metavar="1,16",
        help="comma-separated batch sizes (default 1,16; with --weights the throughput batch, default 16)",
    )
    b.add_argument("--input-size", type=int_at_least(32), default=224, help="image side in pixels (default 224)")
    b.add_argument(
        "--modes",
        type=_modes,
        default=None,
        metavar=",".join(MODES),
        help="modes to compare (eager is always included; default: those installed of "
        "eager,fused,onnxruntime,openvino,openvino-bf16,openvino-int8,onnxruntime-int8)",
    )
    b.add_argument(
        "--formats",
        type=_formats,
        default=None,
        metavar="pytorch,onnx,...",
        help="with --weights: the formats to measure, each at every precision it offers (default: every format; "
        "pytorch is the file run by PyTorch)",
    )
    b.add_argument("--threads", type=int_at_least(1), help="intra-op threads (default: PyTorch's)")
    b.add_argument("--runs", type=int_at_least(1), default=10, help="timed calls per mode (default 10)")
    b.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed calls first (default 3)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..errors import InvalidOption

    log = (lambda s: print(s, file=sys.stderr)) if not args.json else (lambda s: None)
    if args.weights is not None:
        if args.architecture is not None or args.modes is not None:
            raise InvalidOption(
                "give an architecture (timed on random weights, --modes) or --weights SRC (every format), not both"
            )
        return run_formats(args, log)
    if args.architecture is None:
        raise InvalidOption("bench needs an architecture (resnetkit bench resnet50) or --weights SRC")
    if args.formats is not None:
        raise InvalidOption("--formats chooses the files of --weights SRC; an architecture is timed by --modes")
    from ..deploy.bench import benchmark, default_modes, markdown_table, skipped_modes
    from ..models import get_constructor
    from .common import pick_device

    get_constructor(args.architecture)
    device = pick_device(args.device, None)
    results = benchmark(
        args.architecture,
        args.batch_size or [1, 16],
        args.input_size,
        args.modes or default_modes(),
        args.threads,
        args.runs,
        args.warmup,
        log=log,
        device=device,
    )
    results["skipped"] = {} if args.modes else skipped_modes()  # default modes that cannot run here, and why
    if not args.json:
        for mode, why in results["skipped"].items():
            print(f"skipped {mode}: {why}", file=sys.stderr)
    print(json.dumps(results) if args.json else markdown_table([results]))
    return 0


def validation_images(args: argparse.Namespace, model) -> tuple:
    """Up to --max-images labelled images of --data (default: the weights' run's own validation data,
    else the digits val split) for acc@1."""
    import torch

    from ..engine.evaluate import eval_batches

    card = model.card
    if card.multilabel:
        from .eval import multilabel_data

        dataset, source = multilabel_data(args, data_root(args.data), model)
    else:
        dataset, _, source = labelled_data(data_root(args.data), model, card.preprocess, card.classes)
    images, targets = [], []
    for x, y, skipped in eval_batches(dataset, 64, 0):
        print_skipped(skipped)
        images.append(x)
        targets.append(y)
        if sum(len(t) for t in targets) >= args.max_images:
            break
    return torch.cat(images)[: args.max_images], torch.cat(targets)[: args.max_images], source


def run_formats(args: argparse.Namespace, log) -> int:
    import torch

    from ..deploy.calibration import calibration_batches
    from ..deploy.compare import compare_formats, format_table, table_rows
    from ..deploy.loading import is_exported
    from ..errors import InvalidOption

    if args.batch_size and len(args.batch_size) != 1:
        raise InvalidOption("with --weights, --batch-size is the one throughput batch size (latency is at batch 1)")
    model = load_for_inference(args)
    card = model.card
    exported = is_exported(model)
    x_all, y_all, source = validation_images(args, model)
    calibration = calibration_batches(args.calibration, card.preprocess) if args.calibration else list(x_all.split(16))
    previous = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = [(f, p) for f, p in table_rows() if f in args.formats] if args.formats else None
        result = compare_formats(
            model, card, x_all, y_all, calibration, rows=rows, batch=(args.batch_size or [16])[0], runs=args.runs,
            warmup=args.warmup, log=log, given=model if exported else None,
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    result["weights"], result["data"] = card.source, source
    print(json.dumps(result) if args.json else format_table(result, source))
    return 0
