"""`resnetkit summary ARCH`: the paper's Table 1 for any configuration, computed from the real model."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import InvalidOption
from .common import int_at_least


def parse_size(text: str):
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"input size {text!r}: use N (square) or HxW, e.g. 224 or 97x131")
    h = int(m.group(1))
    w = int(m.group(2) or h)
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"input size {text!r} must be positive")
    return h, w


def parse_dilation(text: str):
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or any(p not in ("0", "1") for p in parts):
        raise argparse.ArgumentTypeError(
            f"--dilation {text!r}: give 3 comma-separated 0/1 flags for stages 2-4, e.g. 0,1,1"
        )
    return [p == "1" for p in parts]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="explain an architecture: stages, shapes, params, MACs, diagram", description=__doc__
    )
    p.add_argument("arch", help="architecture name (see `resnetkit models`)")
    p.add_argument(
        "--input-size",
        type=parse_size,
        default=(224, 224),
        metavar="N|HxW",
        help="input image size, square N or HxW (default 224)",
    )
    p.add_argument("--blocks", action="store_true", help="one row per block: shapes, stride, dilation, shortcut")
    p.add_argument(
        "--format",
        choices=["table", "markdown", "json"],
        default="table",
        help="output: aligned table (default), markdown or json",
    )
    p.add_argument("--diagram", metavar="FILE", help="draw the network to FILE (.svg, .png or .pdf)")
    p.add_argument(
        "--dilation",
        type=parse_dilation,
        metavar="0,1,1",
        help="replace the stride of stages 2-4 with dilation (1) or not (0)",
    )
    p.add_argument("--groups", type=int_at_least(1), help="ResNeXt cardinality (Bottleneck architectures)")
    p.add_argument("--width-per-group", type=int_at_least(1), help="width of each group (64 = plain ResNet)")
    p.add_argument("--in-chans", type=int_at_least(1), help="input channels (default 3)")
    p.add_argument("--num-classes", type=int_at_least(0), help="classifier outputs (0: no classifier)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..fileio import check_output_file
    from ..inspect.diagram import draw
    from ..inspect.render import to_json, to_markdown, to_table
    from ..inspect.summary import summarize_arch
    from ..models import get_constructor

    get_constructor(args.arch)  # unknown names fail here, with the closest names
    if args.diagram:
        if Path(args.diagram).suffix.lower() not in (".svg", ".png", ".pdf"):
            raise InvalidOption(f"--diagram {args.diagram}: use a .svg, .png or .pdf file name")
        check_output_file(args.diagram, "--diagram file")
    options = {
        k: v
        for k, v in {
            "replace_stride_with_dilation": args.dilation,
            "groups": args.groups,
            "width_per_group": args.width_per_group,
            "in_chans": args.in_chans,
            "num_classes": args.num_classes,
        }.items()
        if v is not None
    }
    try:
        summary = summarize_arch(args.arch, args.input_size, **options)
    except RuntimeError as exc:  # e.g. an input too small for the network
        raise InvalidOption(
            f"{args.arch} cannot run at {args.input_size[0]}x{args.input_size[1]}: {str(exc).splitlines()[0]}"
        ) from None
    render = {"table": to_table, "markdown": to_markdown, "json": to_json}[args.format]
    print(render(summary, blocks=args.blocks))
    if args.diagram:
        path = draw(summary, Path(args.diagram))
        print(f"diagram: {path}" if args.format != "json" else "", end="\n" if args.format != "json" else "")
    return 0
