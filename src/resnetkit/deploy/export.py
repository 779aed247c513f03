"""Export to ONNX, OpenVINO IR, torch.export (.pt2), TorchScript (legacy) and safetensors, each
runnable file verified against PyTorch by the runtime that will run it."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..errors import BadFile, InvalidOption, MissingDependency, ResnetkitError
from ..fileio import atomic_path, check_output_file, make_dir
from ..weights.io import save_safetensors

FP32_TOLERANCE = 1e-4
FORMATS = {
    ".onnx": "onnx",
    ".pt2": "pt2",
    ".pt": "torchscript",
    ".torchscript": "torchscript",
    ".safetensors": "safetensors",
    "": "openvino",  # a folder: OpenVINO IR (model.xml + model.bin)
}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: Optional[float] = None  # against PyTorch, after re-loading the exported file
    checked_batches: Tuple[int, ...] = ()
    agreement: Optional[float] = None  # int8/bf16: top-1 agreement (%) with the fp32 model
    precision: str = "fp32"


def _example(model: nn.Module, input_size: int, batch: int) -> torch.Tensor:
    in_chans = getattr(model, "in_chans", 3)
    return torch.randn(batch, in_chans, input_size, input_size, generator=torch.Generator().manual_seed(0))


def onnx_session(path: Path, threads: Optional[int] = None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependency("onnxruntime is not installed: pip install 'resnetkit[deploy]'") from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The process's thread setting (torch.set_num_threads, OMP_NUM_THREADS, bench --threads) holds for
    # every runtime, not only PyTorch: ONNX Runtime would otherwise take every core whatever was asked.
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def format_of(path: Path) -> str:
    """The export format a path names: its extension, or OpenVINO IR for a folder name."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidOption(
            f"{path}: unknown export format; use a name ending in .onnx, .pt2, .pt or .safetensors, "
            "or a folder name for OpenVINO IR"
        )
    return fmt


def _write_onnx(model: nn.Module, path: Path, example: torch.Tensor, metadata: Dict[str, Any]) -> None:
    with atomic_path(path, "ONNX file") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
        if metadata:
            import onnx

            proto = onnx.load(str(tmp))
            for k, v in metadata.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
            onnx.save(proto, str(tmp))


def _write_torchscript(model: nn.Module, path: Path, example: torch.Tensor, metadata: Dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit announces its deprecation: a legacy format here
        scripted = torch.jit.trace(model, example, check_trace=False)
        with atomic_path(path, "TorchScript file") as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={"resnetkit.json": json.dumps(metadata)})


def _write_pt2(model: nn.Module, path: Path, example: torch.Tensor, metadata: Dict[str, Any]) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    with atomic_path(path, "torch.export program") as tmp:
        torch.export.save(program, str(tmp), extra_files={"resnetkit.json": json.dumps(metadata)})


def _write_openvino(
    model: nn.Module, path: Path, example: torch.Tensor, metadata: Dict[str, Any], calibration=None
) -> None:
    from .backends import nncf_quantize, openvino_model, require

    require("openvino", metadata.get("precision", "fp32"))
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadFile(f"--out {path} exists and is not an empty folder; an OpenVINO IR export writes a new folder")
    import openvino as ov

    ov_model = openvino_model(model, example.shape[-1])
    if metadata.get("precision") == "int8":
        ov_model = nncf_quantize(ov_model, calibration)
    ov_model.set_rt_info(json.dumps(metadata), ["resnetkit", "meta"])
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_dir(tmp, "export folder")
    try:
        # fp16 compression would change the numbers: keep the weights as they are.
        ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)
        if path.exists():
            path.rmdir()
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2, "openvino": _write_openvino}
# Which precisions each format stores. bf16 in OpenVINO IR is a run-time setting kept in the
# file's metadata (the weights stay fp32: OpenVINO converts them when it compiles for a CPU with bf16).
PRECISIONS_OF = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}


def export(
    model: nn.Module,
    path,
    metadata: Optional[dict] = None,
    input_size: int = 224,
    verify: bool = True,
    precision: str = "fp32",
    calibration=None,
) -> ExportReport:
    """Write ``model`` to ``path``; the format follows the name: .onnx (ONNX, run by ONNX Runtime),
    .pt2 (``torch.export`` program), a folder name (OpenVINO IR), .pt (TorchScript, legacy) or
    .safetensors (the state_dict).

    Every runnable format gets a dynamic batch axis and ``metadata`` (arch, classes,
    preprocessing), and is loaded back by its runtime and run at two batch sizes: for fp32 the
    max abs difference to PyTorch must be <= 1e-4 of the logits' size (the file is removed if
    not). ``precision="int8"`` (ONNX: ONNX Runtime static QDQ; OpenVINO: NNCF) needs
    ``calibration`` (>= 32 images) and reports the file's top-1 agreement with the fp32 model on
    them; ``"bf16"`` (OpenVINO) reports the agreement on random images.
    """
    path = Path(path)
    fmt = format_of(path)
    if precision != "fp32" and precision not in PRECISIONS_OF.get(fmt, ()):
        offered = [f"{f} ({', '.join(p)})" for f, p in PRECISIONS_OF.items()]
        raise InvalidOption(f"{fmt} export is fp32 only; {precision} exports to {' or '.join(offered)}")
    if fmt != "openvino":
        check_output_file(path, "export file")
    if model.training:
        raise InvalidOption(
            "the model is in train mode; call model.eval() before export "
            "(export bakes in BatchNorm's running statistics)"
        )
    metadata = dict(metadata or {})
    if fmt == "safetensors":
        save_safetensors(model.state_dict(), path, metadata)
        return ExportReport(path, fmt)
    batches = None
    if precision == "int8":
        from .quantize import check_calibration

        batches = check_calibration(calibration)
    if precision != "fp32":
        metadata["precision"] = precision
    with torch.no_grad():
        outputs = model(_example(model, input_size, 1)).shape[-1]
    # What a runner needs to know without the original model: the output and input sizes.
    metadata.setdefault("num_classes", int(outputs))
    metadata.setdefault("in_chans", int(getattr(model, "in_chans", 3)))
    metadata.setdefault("input_size", int(input_size))
    if precision == "int8" and fmt == "onnx":
        from .quantize import quantize_onnx_int8

        agreement = quantize_onnx_int8(model, path, batches or [], metadata, input_size)
        return ExportReport(path, fmt, checked_batches=(), agreement=agreement, precision=precision)
    if fmt == "openvino":
        from .fold import fold_batchnorm

        _write_openvino(fold_batchnorm(model), path, _example(model, input_size, 2), metadata, batches)
    else:
        WRITERS[fmt](model, path, _example(model, input_size, 2), metadata)
    if not verify:
        return ExportReport(path, fmt, precision=precision)
    from .runtimes import load_exported

    runner = load_exported(path)
    if precision != "fp32":
        images = torch.cat(batches) if batches else _example(model, input_size, 32)
        with torch.no_grad():
            agree = (runner(images).argmax(1) == model(images).argmax(1)).float().mean().item()
        return ExportReport(path, fmt, agreement=100.0 * agree, precision=precision)
    checks = (1, 3)
    diff, scale = 0.0, 1.0
    with torch.no_grad():
        for b in checks:
            reference = model(_example(model, input_size, b))
            diff = max(diff, float((runner(_example(model, input_size, b)) - reference).abs().max()))
            scale = max(scale, float(reference.abs().max()))
    # Relative to the size of the logits (at least 1): runtimes reorder float sums differently.
    tolerance = scale * FP32_TOLERANCE
    if diff > tolerance:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        raise ResnetkitError(
            f"exported {fmt} model differs from PyTorch by {diff:.2e} (> {tolerance}); the file was removed"
        )
    return ExportReport(path, fmt, diff, checks)
