"""`resnetkit export`: ONNX, OpenVINO IR, torch.export, safetensors (and legacy TorchScript) files,
verified by the runtime that will run them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidOption
from .common import add_weights_args, export_metadata, load_for_inference


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


EXTENSIONS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "safetensors": ".safetensors", "openvino": ""}


def run_export(args: argparse.Namespace) -> int:
    from ..deploy.export import PRECISIONS_OF, export
    from ..deploy.quantize import calibration_batches
    from ..fileio import check_output_file

    out = Path(args.out)
    if out.suffix != EXTENSIONS[args.format]:
        if args.format == "openvino":
            raise InvalidOption(f"--out {out}: an OpenVINO IR export is a folder; give a name without an extension")
        raise InvalidOption(f"--out {out}: a {args.format} file must end in {EXTENSIONS[args.format]}")
    check_output_file(out if args.format != "openvino" else out / "model.xml", "--out file")
    if args.precision != "fp32" and args.format not in PRECISIONS_OF:
        raise InvalidOption(
            f"--precision {args.precision} exports to onnx (int8) or openvino (bf16, int8); {args.format} is fp32 only"
        )
    if args.precision not in PRECISIONS_OF.get(args.format, ("fp32",)):
        raise InvalidOption(f"--precision {args.precision} is not offered for {args.format}: use openvino")
    model, loaded, preprocess, classes = load_for_inference(args)
    calibration = None
    if args.precision == "int8":
        from ..engine.rundir import calibration_source

        source = calibration_source(args.calibration, loaded.source)
        calibration = calibration_batches(source, preprocess)
    meta = export_metadata(model, classes, preprocess, model_options=loaded.model_options)
    report = export(
        model, out, metadata=meta, input_size=preprocess.crop_size, precision=args.precision, calibration=calibration
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
