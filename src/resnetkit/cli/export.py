"""`resnetkit export`: ONNX, TorchScript or safetensors files, verified against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidOption
from .common import add_weights_args, load_for_inference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, TorchScript or safetensors",
        description="Export a model; ONNX and TorchScript files are verified against PyTorch.",
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
        "--int8",
        action="store_true",
        help="post-training int8 quantization: onnx (ONNX Runtime static QDQ) or torchscript (legacy torch.ao)",
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="folder of >= 32 representative images for --int8 (default for a training run: its validation data)",
    )
    p.set_defaults(handler=run_export)


EXTENSIONS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "safetensors": ".safetensors", "openvino": ""}


def run_export(args: argparse.Namespace) -> int:
    from torch import nn

    from ..deploy.export import export
    from ..deploy.quantize import calibration_batches, quantize_int8, quantize_onnx_int8
    from ..fileio import check_output_file

    out = Path(args.out)
    if out.suffix != EXTENSIONS[args.format]:
        if args.format == "openvino":
            raise InvalidOption(f"--out {out}: an OpenVINO IR export is a folder; give a name without an extension")
        raise InvalidOption(f"--out {out}: a {args.format} file must end in {EXTENSIONS[args.format]}")
    check_output_file(out if args.format != "openvino" else out / "model.xml", "--out file")
    if args.int8:
        if args.format not in ("onnx", "torchscript"):
            raise InvalidOption("--int8 exports ONNX (ONNX Runtime int8) or TorchScript; use --format onnx")
    model, loaded, preprocess, classes = load_for_inference(args)
    calibration = args.calibration
    if args.int8 and not calibration:
        from ..engine.rundir import run_directory_of, validation_images

        run = run_directory_of(loaded.source)
        if run is None:
            raise InvalidOption("--int8 needs --calibration DIR with at least 32 representative images")
        calibration = validation_images(run)
        print(f"calibrating on the validation data of the training run {run}")
    meta = {
        "arch": model.arch,
        "num_classes": model.num_classes,
        "classes": classes,
        "preprocess": preprocess.to_dict(),
        "in_chans": getattr(model, "in_chans", 3),
        "model_options": loaded.model_options,
    }
    runnable: nn.Module = model
    if args.int8 and args.format == "onnx":
        agreement = quantize_onnx_int8(
            model, out, calibration_batches(calibration, preprocess), meta, preprocess.crop_size
        )
        print(
            f"wrote {out} (onnx, int8 by ONNX Runtime); top-1 agreement with fp32 on the calibration images "
            f"{agreement:.1f} %"
        )
        return 0
    if args.int8:
        runnable = quantize_int8(model, calibration_batches(calibration, preprocess))
        meta["precision"] = "int8"
    report = export(runnable, out, metadata=meta, input_size=preprocess.crop_size)
    check = (
        f"; max abs diff vs PyTorch {report.max_abs_diff:.2e} at batch {report.checked_batches}"
        if report.max_abs_diff is not None
        else ""
    )
    print(f"wrote {report.path} ({report.format}){check}")
    return 0
