"""Inference backends: one runner per (runtime, precision), each runtime optional and detected at
run time.

| precision | PyTorch | ONNX Runtime | OpenVINO |
|---|---|---|---|
| fp32 | folded BN, channels_last | yes | yes |
| bf16 | folded BN, channels_last, autocast | - (no bf16 kernels on CPU) | yes (CPUs with BF16) |
| int8 | - (see below) | static QDQ (onnxruntime.quantization) | NNCF post-training quantization |

int8 in PyTorch itself is not offered: torch.ao's FX quantization is deprecated, and its
successor (PT2E with torchao's X86InductorQuantizer) fails to annotate torchvision's own
resnet18 with torch 2.14 + torchao 0.18 ("Input partition has more than one output node"),
besides needing a multi-minute torch.compile per model; ONNX Runtime and OpenVINO int8 are
maintained and were faster here than torch.ao's int8 (docs/deploy.md).
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import InvalidOption, MissingDependency

PRECISIONS = ("fp32", "bf16", "int8")
BACKENDS = ("pytorch", "onnxruntime", "openvino")
SUPPORTED: Dict[str, Tuple[str, ...]] = {
    "fp32": ("openvino", "onnxruntime", "pytorch"),
    "bf16": ("openvino", "pytorch"),
    "int8": ("openvino", "onnxruntime"),
}
PACKAGES = {"onnxruntime": ("onnxruntime", "deploy"), "openvino": ("openvino", "openvino")}
INT8_PACKAGES = {"openvino": ("nncf", "openvino"), "onnxruntime": ("onnx", "deploy")}


def _importable(name: str) -> bool:
    if name == "nncf":  # heavy to import (it loads its torch backend): look for it only
        return importlib.util.find_spec(name) is not None
    try:
        __import__(name)  # a broken install is as good as none
    except ImportError:
        return False
    return True


def installed(backend: str, precision: str = "fp32") -> bool:
    """Whether this backend's packages can be imported."""
    needed = [PACKAGES[backend][0]] if backend in PACKAGES else []
    if precision == "int8" and backend in INT8_PACKAGES:
        needed.append(INT8_PACKAGES[backend][0])
    return all(_importable(name) for name in needed)


def require(backend: str, precision: str) -> None:
    """MissingDependency naming the extra to install, if this backend cannot run here."""
    if backend not in BACKENDS:
        raise InvalidOption(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend not in SUPPORTED[precision]:
        raise InvalidOption(
            f"{precision} is not offered on {backend}; {precision} runs on {', '.join(SUPPORTED[precision])}"
        )
    if not installed(backend, precision):
        extra = (INT8_PACKAGES if precision == "int8" and backend in INT8_PACKAGES else PACKAGES)[backend][1]
        raise MissingDependency(f"{precision} on {backend} needs it installed: pip install 'resnetkit[{extra}]'")
    if precision == "bf16" and backend == "openvino" and not openvino_has_bf16():
        raise MissingDependency("this CPU has no bf16 support in OpenVINO (no AVX512-BF16/AMX): use fp32 or int8")


def available(precision: str) -> List[str]:
    """The backends that can run ``precision`` on this machine, fastest-first by experience."""
    out = []
    for backend in SUPPORTED[precision]:
        try:
            require(backend, precision)
        except MissingDependency:
            continue
        out.append(backend)
    return out


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


# ---------------------------------------------------------------------------------------- OpenVINO


def openvino_has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def openvino_model(model: nn.Module, input_size: int):
    """The model converted to an OpenVINO model in memory, with a dynamic batch axis."""
    import warnings

    import openvino as ov

    in_chans = getattr(model, "in_chans", 3)
    example = torch.randn(2, in_chans, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # share_weights=False: by default the OpenVINO model (and what is compiled from it) reads the
        # weights from the PyTorch tensors' memory, which is freed once ``model`` goes (build() passes a
        # temporary folded copy): wrong logits, then a segfault in a later allocation.
        ov_model = ov.convert_model(model, example_input=example, share_weights=False)
    ov_model.reshape({ov_model.input(0): ov.PartialShape([-1, in_chans, input_size, input_size])})
    return ov_model


def nncf_quantize(ov_model, calibration: Sequence[torch.Tensor]):
    """NNCF's default post-training quantization (int8 weights per channel, calibrated
    activations) of an OpenVINO model, on every calibration image."""
    import contextlib
    import io
    import logging

    # NNCF makes torch look for CUDA and log that it found none, and draws progress bars on
    # stdout: say nothing of either.
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)
    try:
        import nncf

        nncf.set_log_level(logging.ERROR)
        batches = [b.numpy() for b in calibration]
        count = sum(len(b) for b in batches)
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(ov_model, nncf.Dataset(batches), subset_size=max(count, 1))
    finally:
        cpp_log.setLevel(level)


def ov_shape(shape) -> object:
    import openvino as ov

    return ov.PartialShape(list(shape))


class OpenVINORunner(nn.Module):
    """A compiled OpenVINO model behind a module interface (CPU float tensors in, logits out).

    Compiled with the LATENCY hint (one stream, all cores on one request: what a single caller
    wants) and an infer request per calling thread, reused across its calls (a request shared by two
    threads would mix their inputs and outputs), its input shared with the tensor's memory rather
    than copied."""

    def __init__(self, ov_model, precision: str = "fp32") -> None:
        super().__init__()
        import threading

        import openvino as ov

        hint = {"bf16": "bf16"}.get(precision, "f32")  # int8 models keep f32 for the parts left in float
        # Threads as PyTorch has them (see export.onnx_session): OpenVINO would take every core.
        self.compiled = ov.Core().compile_model(
            ov_model,
            "CPU",
            {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": hint,
                "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            },
        )
        self._local = threading.local()

    @property
    def request(self):
        """This thread's infer request."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        expected = self.compiled.input(0).get_partial_shape()
        if not expected.compatible(ov_shape(array.shape)):
            raise InvalidOption(f"input of shape {list(array.shape)} does not fit this model's input {expected}")
        request = self.request
        request.infer({0: array}, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


# ------------------------------------------------------------------------------------------- build


def build(
    backend: str,
    precision: str,
    model: nn.Module,
    input_size: int = 224,
    calibration: Optional[Sequence[torch.Tensor]] = None,
) -> nn.Module:
    """A runner of ``model`` (eval mode; not modified) on ``backend`` at ``precision``; int8 needs
    ``calibration`` batches. Every runner takes float NCHW tensors and returns float logits."""
    from .fold import fold_batchnorm

    if precision not in PRECISIONS:
        raise InvalidOption(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    require(backend, precision)
    if model.training:
        raise InvalidOption("inference backends need the model in eval mode: call model.eval() first")
    if precision == "int8":
        from .quantize import check_calibration

        calibration = check_calibration(calibration)
    folded = fold_batchnorm(model)
    if backend == "pytorch":
        return ChannelsLast(folded, bf16=precision == "bf16").eval()
    if backend == "openvino":
        ov_model = openvino_model(folded, input_size)
        if precision == "int8":
            ov_model = nncf_quantize(ov_model, calibration or [])
        return OpenVINORunner(ov_model, precision).eval()
    # ONNX Runtime keeps the session in memory: the file is only needed while it is created.
    from .runtimes import load_exported

    with tempfile.TemporaryDirectory(prefix="resnetkit-") as tmp:
        path = Path(tmp) / "model.onnx"
        if precision == "int8":
            from .quantize import quantize_onnx_int8

            quantize_onnx_int8(folded, path, list(calibration or []), {}, input_size)
        else:
            from .export import export

            export(folded, path, input_size=input_size)
        return load_exported(path).eval()
