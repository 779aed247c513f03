"""Export to ONNX (verified in onnxruntime), TorchScript and safetensors (with metadata)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from ..errors import InvalidOption, MissingDependency, ResnetkitError
from ..fileio import atomic_path, check_output_file
from ..weights.io import save_safetensors

ONNX_FP32_TOLERANCE = 1e-4
FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".torchscript": "torchscript", ".safetensors": "safetensors"}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: Optional[float] = None  # against PyTorch, after re-loading the exported file
    checked_batches: Tuple[int, ...] = ()


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
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export(
    model: nn.Module, path, metadata: Optional[dict] = None, input_size: int = 224, verify: bool = True
) -> ExportReport:
    """Write ``model`` to ``path``; the format follows the extension (.onnx, .pt, .safetensors).

    ONNX gets a dynamic batch axis and is re-run in onnxruntime at two batch sizes: the max abs
    difference to PyTorch is reported and must be <= 1e-4 (fp32). TorchScript is reloaded and
    compared the same way. safetensors stores the state_dict with ``metadata`` (arch, classes,
    preprocessing).
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidOption(f"{path}: unknown export format; use a name ending in {', '.join(FORMATS)}")
    check_output_file(path, "export file")
    if model.training:
        raise InvalidOption(
            "the model is in train mode; call model.eval() before export "
            "(export bakes in BatchNorm's running statistics)"
        )
    if fmt == "safetensors":
        save_safetensors(model.state_dict(), path, metadata or {})
        return ExportReport(path, fmt)
    checks = (1, 3)
    with torch.no_grad():
        references = {b: model(_example(model, input_size, b)) for b in checks}
    if fmt == "onnx":
        with atomic_path(path, "ONNX file") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (_example(model, input_size, 1),),
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
        if not verify:
            return ExportReport(path, fmt)
        session = onnx_session(path)
        diff = max(
            float(
                (
                    torch.from_numpy(session.run(None, {"images": _example(model, input_size, b).numpy()})[0])
                    - references[b]
                )
                .abs()
                .max()
            )
            for b in checks
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.trace(model, _example(model, input_size, 1), check_trace=False)
            if metadata:
                extra = {"resnetkit.json": json.dumps(metadata)}
            else:
                extra = {}
            with atomic_path(path, "TorchScript file") as tmp:
                torch.jit.save(scripted, str(tmp), _extra_files=extra)
            if not verify:
                return ExportReport(path, fmt)
            loaded = torch.jit.load(str(path))
        with torch.no_grad():
            diff = max(float((loaded(_example(model, input_size, b)) - references[b]).abs().max()) for b in checks)
    if diff > ONNX_FP32_TOLERANCE:
        path.unlink(missing_ok=True)
        raise ResnetkitError(
            f"exported {fmt} model differs from PyTorch by {diff:.2e} (> {ONNX_FP32_TOLERANCE}); the file was removed"
        )
    return ExportReport(path, fmt, diff, checks)
