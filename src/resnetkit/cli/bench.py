"""`resnetkit bench`: every inference mode measured side by side in one process."""

from __future__ import annotations

import argparse
import json
import sys

from ..deploy.modes import MODES
from .common import int_at_least


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
        help="measure inference speed of every deployment mode side by side",
        description="Warm-up, then the median and p95 of N runs for each mode, in one process.",
    )
    b.add_argument("arch", help="architecture (random weights: speed does not depend on them)")
    b.add_argument(
        "-b",
        "--batch-size",
        type=_int_list,
        default=[1, 16],
        metavar="1,16",
        help="comma-separated batch sizes (default 1,16)",
    )
    b.add_argument("--input-size", type=int_at_least(32), default=224, help="image side in pixels (default 224)")
    b.add_argument(
        "--modes",
        type=_modes,
        default=["eager", "channels_last", "fused", "onnxruntime", "int8"],
        metavar=",".join(MODES),
        help="modes to compare (eager is always included; default: eager,channels_last,fused,onnxruntime,int8)",
    )
    b.add_argument("--threads", type=int_at_least(1), help="intra-op threads (default: PyTorch's)")
    b.add_argument("--runs", type=int_at_least(1), default=10, help="timed calls per mode (default 10)")
    b.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed calls first (default 3)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..deploy.bench import benchmark, markdown_table
    from ..models import get_constructor

    get_constructor(args.arch)
    results = benchmark(
        args.arch,
        args.batch_size,
        args.input_size,
        args.modes,
        args.threads,
        args.runs,
        args.warmup,
        log=lambda s: print(s, file=sys.stderr) if not args.json else None,
    )
    if args.json:
        print(json.dumps(results))
    else:
        print(markdown_table([results]))
    return 0
