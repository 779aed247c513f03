"""`resnetkit export`: ONNX, OpenVINO IR, torch.export, safetensors (and legacy TorchScript) files,
verified by the runtime that will run them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidOption
from .common import add_weights_args, load_for_inference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, OpenVINO IR, torch.export (.pt2), safetensors or TorchScript",
        description="Export a model; every runnable file is loaded back by its runtime and checked against PyTorch.",
    )
    add_weights_args(p)
    p.add_argument(
        "--format",
        choices=["onnx", "openvino", "pt2", "safetensors", "torchscript"],
        required=True,
        help="onnx (run by ONNX Runtime), openvino (IR folder), pt2 (torch.export program), safetensors "
        "(weights + metadata), torchscript (legacy); each runnable file is verified by its runtime",
    )
    p.add_argument(
        "--out", "-o", required=True, help="output file (.onnx, .pt2, .pt, .safetensors) or folder (openvino)"
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "int8"],
        default="fp32",
        help="int8: post-training quantization (onnx: ONNX Runtime static QDQ; openvino: NNCF); "
        "bf16: openvino only (runs in bf16 on CPUs that have it). Default fp32",
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
        if fmt.name == "openvino":
            raise InvalidOption(f"--out {out}: an OpenVINO IR export is a folder; give a name without an extension")
        raise InvalidOption(f"--out {out}: a {fmt.name} file must end in {fmt.suffix}")
    check_output_file(out if fmt.suffix else out / "model.xml", "--out file")
    if args.precision not in fmt.precisions:
        offered = " or ".join(
            f"{f.name} ({', '.join(f.precisions[1:])})" for f in FORMATS.values() if len(f.precisions) > 1
        )
        raise InvalidOption(f"--precision {args.precision} exports to {offered}; {fmt.name} is fp32 only")
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
    print(f"wrote {report.path} ({report.format}, {report.precision}){check}")
    return 0
