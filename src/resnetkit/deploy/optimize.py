"""`optimize()`: the fastest correct inference module for this machine and precision."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import InvalidOption, MissingDependency
from .export import export
from .fold import fold_batchnorm
from .quantize import quantize_int8
from .runtimes import load_exported

PRECISIONS = ("fp32", "bf16", "int8")


class ChannelsLast(nn.Module):
    """Runs a channels_last copy of ``model`` on channels_last input (optionally under bf16
    autocast), float32 out. The given model is not modified (``.to`` would convert it in place)."""

    def __init__(self, model: nn.Module, bf16: bool = False) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.bf16 = bf16

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.model(x).float()
        return self.model(x)


def optimize(
    model: nn.Module,
    precision: str = "fp32",
    calibration=None,
    backend: str = "auto",
    input_size: int = 224,
    onnx_path: Optional[Path] = None,
) -> nn.Module:
    """The fastest correct inference module for ``model``.

    - fp32: BatchNorm folded, then onnxruntime (``backend="auto"``/``"onnxruntime"``; measured
      fastest on x86 CPUs, see the README's table) or eager channels_last (``"eager"``).
    - bf16: folded, channels_last, bf16 autocast (fast on CPUs with AVX512-BF16/AMX and on GPUs).
    - int8: post-training static quantization for x86 with ``calibration`` (>= 32 images).
    The input model is not modified.
    """
    if precision not in PRECISIONS:
        raise InvalidOption(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if model.training:
        raise InvalidOption("optimize() needs the model in eval mode: call model.eval() first")
    if precision == "int8":
        if calibration is None:
            raise InvalidOption("int8 needs calibration images (a folder or a tensor of at least 32 images)")
        return quantize_int8(model, calibration)
    folded = fold_batchnorm(model)
    if precision == "bf16":
        return ChannelsLast(folded, bf16=True).eval()
    if backend not in ("auto", "onnxruntime", "eager"):
        raise InvalidOption(f"backend {backend!r} is not one of auto, onnxruntime, eager")
    if backend in ("auto", "onnxruntime"):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            if backend == "onnxruntime":
                raise MissingDependency("onnxruntime is not installed: pip install 'resnetkit[deploy]'") from None
            return ChannelsLast(folded).eval()
        if onnx_path:
            export(folded, Path(onnx_path), input_size=input_size)
            return load_exported(Path(onnx_path)).eval()
        # The session holds the model in memory, so the file is only needed while it is created.
        with tempfile.TemporaryDirectory(prefix="resnetkit-") as tmp:
            path = Path(tmp) / "model.onnx"
            export(folded, path, input_size=input_size)
            return load_exported(path).eval()
    return ChannelsLast(folded).eval()
