"""`resnetkit bench`: inference speed side by side in one process; with --weights, one row per
deployable (format, precision) with its file size, accuracy and agreement."""

from __future__ import annotations

import argparse
import json
import sys

from ..deploy.modes import MODES
from .common import add_weights_args, export_metadata, int_at_least


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


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench",
        help="measure inference speed (and, with --weights, accuracy) of every deployment path",
        description="ARCH: every mode on random weights (speed does not depend on them). --weights SRC: "
        "every format x precision exported from SRC (or SRC itself when it is an exported file), with file "
        "size, acc@1 on --data (default: the digits val split), agreement with fp32, latency and throughput.",
    )
    b.add_argument("architecture", nargs="?", help="architecture to time on random weights (or use --weights)")
    add_weights_args(b, required=False)
    b.add_argument("--data", "--data-path", dest="data", help="with --weights: labelled ImageFolder for acc@1")
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
    b.add_argument("--threads", type=int_at_least(1), help="intra-op threads (default: PyTorch's)")
    b.add_argument("--runs", type=int_at_least(1), default=10, help="timed calls per mode (default 10)")
    b.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed calls first (default 3)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.set_defaults(handler=run_bench)


def default_modes() -> list:
    from ..deploy.backends import available
    from ..deploy.bench import DEFAULT_MODES
    from ..deploy.modes import BACKEND_MODES

    return [m for m in DEFAULT_MODES if m not in BACKEND_MODES or BACKEND_MODES[m][0] in available(BACKEND_MODES[m][1])]


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
    from ..deploy.bench import benchmark, markdown_table
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
    print(json.dumps(results) if args.json else markdown_table([results]))
    return 0


def run_formats(args: argparse.Namespace, log) -> int:
    import torch

    from ..deploy.compare import ROWS, compare_formats, format_table
    from ..deploy.quantize import calibration_batches
    from ..engine.evaluate import eval_batches
    from ..errors import InvalidOption
    from .common import load_for_inference
    from .eval import data_root, labelled_data, print_skipped

    if args.batch_size and len(args.batch_size) != 1:
        raise InvalidOption("with --weights, --batch-size is the one throughput batch size (latency is at batch 1)")
    root = data_root(args.data)
    model, loaded, preprocess, classes = load_for_inference(args)
    dataset, _, source = labelled_data(root, model, preprocess, classes)
    images, targets = [], []
    for x, y, skipped in eval_batches(dataset, 64, 0):
        print_skipped(skipped)
        images.append(x)
        targets.append(y)
        if sum(len(t) for t in targets) >= args.max_images:
            break
    x_all, y_all = torch.cat(images)[: args.max_images], torch.cat(targets)[: args.max_images]
    exported = getattr(model, "format", None)
    if exported and exported not in ("onnx", "openvino"):
        raise InvalidOption(f"bench --weights measures PyTorch weights and ONNX or OpenVINO files, not {exported}")
    calibration = calibration_batches(args.calibration, preprocess) if args.calibration else list(x_all.split(16))
    meta = export_metadata(model, classes, preprocess)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = compare_formats(
        model,
        meta,
        x_all,
        y_all,
        calibration,
        rows=ROWS,
        batch=(args.batch_size or [16])[0],
        runs=args.runs,
        warmup=args.warmup,
        log=log,
        given=model if exported else None,
    )
    result["weights"], result["data"] = loaded.source, source
    print(json.dumps(result) if args.json else format_table(result, source))
    return 0
