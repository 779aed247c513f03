"""The one table of what deploys where: the runtimes (which precisions each runs in memory, what it
needs installed, how it builds a runner) and the file formats (suffix, the runtime that runs them,
the precisions they store, the extra to install, how to write and load them). Every verb - export,
loading, optimize, bench - reads these two tables; the knowledge of each runtime lives in its leaf
module under ``runtimes/``.

| runtime | fp32 | bf16 | int8 | needs |
|---|---|---|---|---|
| pytorch | folded BN, channels_last | + autocast | - (see below) | - |
| onnxruntime | yes | - (no bf16 kernels on CPU) | static QDQ | resnetkit[deploy] |
| openvino | yes | CPUs with BF16 | NNCF | resnetkit[openvino] |

int8 in PyTorch itself is not offered: torch.ao's FX quantization is deprecated, and its successor
(PT2E with torchao's X86InductorQuantizer) fails to annotate torchvision's own resnet18 with torch
2.14 + torchao 0.18 ("Input partition has more than one output node"), besides needing a
multi-minute torch.compile per model; ONNX Runtime and OpenVINO int8 are maintained and were faster
here (docs/deploy.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..card import PRECISIONS
from ..errors import BadFile, InvalidOption, MissingDependency
from .common import importable
from .runtimes import onnxruntime as ort_leaf
from .runtimes import openvino as ov_leaf
from .runtimes import pytorch as pt_leaf

Builder = Callable[[nn.Module, str, int, Optional[Sequence[torch.Tensor]]], nn.Module]
Writer = Callable[..., None]
Loader = Callable[[Path], nn.Module]


@dataclass(frozen=True)
class Runtime:
    name: str
    precisions: Tuple[str, ...]
    packages: Tuple[str, ...]  # what it needs to run at all
    int8_packages: Tuple[str, ...]  # and for int8
    extra: Optional[str]  # the pip extra that installs them
    build: Builder  # (BatchNorm-folded model, precision, input size, calibration) -> runner


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # "" for a folder
    runtime: str
    precisions: Tuple[str, ...]
    write: Writer  # (model, path, card, input_size, calibration)
    load: Optional[Loader]  # None: not an exported artifact (weights load as a PyTorch model)
    what: str  # how the docs and errors call a file of it


RUNTIMES: Dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("pytorch", ("fp32", "bf16"), (), (), None, pt_leaf.build),
        Runtime("onnxruntime", ("fp32", "int8"), ("onnxruntime", "onnx"), (), "deploy", ort_leaf.build),
        Runtime("openvino", ("fp32", "bf16", "int8"), ("openvino",), ("nncf",), "openvino", ov_leaf.build),
    )
}
# The order optimize() tries when it cannot measure, fastest first by experience here.
PREFERENCE = {
    "fp32": ("openvino", "onnxruntime", "pytorch"),
    "bf16": ("openvino", "pytorch"),
    "int8": ("openvino", "onnxruntime"),
}

FORMATS: Dict[str, Format] = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", "onnxruntime", ("fp32", "int8"), ort_leaf.write, ort_leaf.load, "an exported ONNX model"),
        Format("openvino", "", "openvino", ("fp32", "bf16", "int8"), ov_leaf.write, ov_leaf.load, "an OpenVINO IR model"),
        Format("pt2", ".pt2", "pytorch", ("fp32",), pt_leaf.write_pt2, pt_leaf.load_pt2, "an exported torch.export program"),
        Format("torchscript", ".pt", "pytorch", ("fp32",), pt_leaf.write_torchscript, pt_leaf.load_torchscript, "a TorchScript program"),
        Format("safetensors", ".safetensors", "pytorch", ("fp32",), pt_leaf.write_safetensors, None, "a safetensors weights file"),
    )
}  # fmt: skip


ENV_BACKEND = "RESNETKIT_BACKEND"


def preferred_backend(asked: Optional[str], precision: str) -> str:
    """The backend to use: the one asked for; else ``$RESNETKIT_BACKEND`` where that runtime offers
    the precision; else "auto" (``optimize()`` measures)."""
    if asked:
        return asked
    preferred = os.environ.get(ENV_BACKEND, "auto")
    if preferred != "auto" and (preferred not in RUNTIMES or precision not in RUNTIMES[preferred].precisions):
        return "auto"
    return preferred


# ---- what is installed -----------------------------------------------------------------------------


def installed(runtime: str, precision: str = "fp32") -> bool:
    """Whether this runtime's packages (and, for int8, its quantizer's) can be imported."""
    r = RUNTIMES[runtime]
    needed = r.packages + (r.int8_packages if precision == "int8" else ())
    return all(importable(name) for name in needed)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InvalidOption(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}", field="precision")


def require(runtime: str, precision: str) -> None:
    """InvalidOption for a runtime or precision that does not exist or does not pair; MissingDependency
    naming the extra to install when the runtime cannot run here."""
    check_precision(precision)
    if runtime not in RUNTIMES:
        raise InvalidOption(f"backend {runtime!r} is not one of {', '.join(RUNTIMES)}", field="backend")
    r = RUNTIMES[runtime]
    if precision not in r.precisions:
        offered = ", ".join(n for n, o in RUNTIMES.items() if precision in o.precisions)
        raise InvalidOption(
            f"{precision} is not offered on {runtime}; {precision} runs on {offered}", field="precision"
        )
    if not installed(runtime, precision):
        raise MissingDependency(f"{precision} on {runtime} needs it installed: pip install 'resnetkit[{r.extra}]'")
    if precision == "bf16" and runtime == "openvino" and not ov_leaf.has_bf16():
        raise MissingDependency("this CPU has no bf16 support in OpenVINO (no AVX512-BF16/AMX): use fp32 or int8")


def available(precision: str) -> List[str]:
    """The runtimes that can run ``precision`` on this machine, fastest-first by experience."""
    check_precision(precision)
    out = []
    for runtime in PREFERENCE[precision]:
        try:
            require(runtime, precision)
        except MissingDependency:
            continue
        out.append(runtime)
    return out


# ---- formats of paths ------------------------------------------------------------------------------


def format_for_output(path: Path) -> Format:
    """The format an output path names: its extension, or OpenVINO IR for a name without one."""
    suffix = Path(path).suffix.lower()
    for f in FORMATS.values():
        if f.suffix == suffix:
            return f
    known = ", ".join(f.suffix for f in FORMATS.values() if f.suffix)
    raise InvalidOption(
        f"{path}: unknown export format; use a name ending in {known}, or a folder name for OpenVINO IR", field="out"
    )


def _zip_names(path: Path) -> List[str]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return []


def detect(path: Path) -> Optional[Format]:
    """The exported format of an existing path (ONNX, OpenVINO IR, .pt2, TorchScript), or None for
    anything else (weights, a run directory, a missing path)."""
    path = Path(path)
    if path.is_dir():
        # An IR folder even when its .bin is missing: the loader names what is missing, rather than
        # the folder being taken for a training run without weights.
        return FORMATS["openvino"] if any(path.glob("*.xml")) else None
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return FORMATS["openvino"]
    if suffix in (".onnx", ".pt2"):
        return FORMATS[suffix[1:]]
    names = _zip_names(path)
    if any("/code/" in n for n in names):
        return FORMATS["torchscript"]
    if any(n.endswith(("serialized_exported_program.json", "models/model.json")) for n in names):
        return FORMATS["pt2"]
    return None


def load_exported(path: Path) -> nn.Module:
    """The exported artifact at ``path`` on its runtime; BadFile if it is not one."""
    fmt = detect(Path(path))
    if fmt is None or fmt.load is None:
        raise BadFile(f"{path}: not an exported model (ONNX, OpenVINO IR, .pt2 or TorchScript)")
    return fmt.load(Path(path))
