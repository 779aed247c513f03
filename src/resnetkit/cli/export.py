"""`resnetkit export`: every file format of the deploy table (resnetkit/targets.py), verified by the
runtime that will run it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidOption
from ..targets import FORMAT_ROWS, PRECISIONS
from .common import add_weights_args, load_for_inference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help=f"export a model to {', '.join(f.name for f in FORMAT_ROWS)}",
        description="Export a model; every file is loaded back by its runtime and checked against PyTorch where "
        "that runtime runs here (a Core ML package: its spec and card, and the output says predictions were not).",
    )
    add_weights_args(p)
    p.add_argument(
        "--format",
        choices=[f.name for f in FORMAT_ROWS],
        required=True,
        help="; ".join(f"{f.name}: {f.what} ({f.suffix or 'a folder'})" for f in FORMAT_ROWS)
        + "; each file is loaded back and checked where its runtime runs here",
    )
    p.add_argument("--out", "-o", required=True, help="the output file or folder, named as --format says")
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="fp32",
        help="default fp32; "
        + "; ".join(
            f"{p}: " + ", ".join(f.name for f in FORMAT_ROWS if p in f.precisions) for p in PRECISIONS if p != "fp32"
        )
        + " (int8: post-training quantization calibrated on --calibration or the run's validation data)",
    )
    p.add_argument("--int8", dest="precision", action="store_const", const="int8", help="same as --precision int8")
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="folder of >= 32 representative images for --int8 (default for a training run: its validation data)",
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..deploy.calibration import calibration_batches
    from ..deploy.export import export
    from ..deploy.formats import FORMATS, require
    from ..fileio import check_output_file

    fmt = FORMATS[args.format]
    out = Path(args.out)
    if out.suffix != fmt.suffix:
        if not fmt.suffix:
            raise InvalidOption(f"--out {out}: {fmt.what} is a folder; give a name without an extension")
        raise InvalidOption(f"--out {out}: a {fmt.name} file must end in {fmt.suffix}")
    check_output_file(out / fmt.marker if fmt.marker else out, "--out file")
    if args.precision not in fmt.precisions:
        offered = " or ".join(
            f"{f.name} ({', '.join(f.precisions[1:])})" for f in FORMATS.values() if args.precision in f.precisions
        )
        raise InvalidOption(
            f"--precision {args.precision} exports to {offered}; {fmt.name} stores {', '.join(fmt.precisions)}"
        )
    if fmt.load is not None:
        require(fmt.runtime, args.precision)  # the extra to install, named before the model is loaded
    model = load_for_inference(args)
    card = model.card
    from ..deploy.loading import is_exported

    if is_exported(model):  # an export runs as it is: its graph is not a PyTorch module to export again
        raise InvalidOption(
            f"--weights {args.weights} is already an exported {card.format} model ({card.precision}); export from the "
            "PyTorch weights it came from (a run directory, .safetensors or .pt file)"
        )
    calibration = None
    if args.precision == "int8":
        from ..engine.rundir import calibration_source

        source = calibration_source(args.calibration, card.source or args.weights)
        calibration = calibration_batches(source, card.preprocess, in_chans=card.in_chans)
    report = export(
        model, out, metadata=card, input_size=card.input_size, precision=args.precision, calibration=calibration
    )
    if report.agreement is not None:
        on = "the calibration images" if args.precision == "int8" else "random images"
        check = f"; top-1 agreement with fp32 on {on} {report.agreement:.1f} %"
    elif report.max_abs_diff is not None:
        check = f"; max abs diff vs PyTorch {report.max_abs_diff:.2e} at batch {report.checked_batches}"
    else:
        check = ""
    if report.note:
        check += f"; {report.note}"
    print(f"wrote {report.path} ({report.format}, {report.precision}){check}")
    return 0
