"""How each row of the deploy table (``resnetkit/targets.py``: runtimes and file formats, as data) is
built, written and loaded: a row's leaf module ``runtimes/<runtime>.py`` and its functions, imported
when first called. Every verb - export, loading, optimize, bench - reads RUNTIMES and FORMATS here;
the knowledge of each runtime lives in its leaf.

| runtime | fp32 | bf16 | fp16 | int8 | needs |
|---|---|---|---|---|---|
| pytorch | folded BN, channels_last | + autocast | - | - (see below) | - |
| onnxruntime | yes | - (no bf16 kernels on CPU) | - | static QDQ | resnetkit[deploy] |
| openvino | yes | CPUs with BF16 | - | NNCF | resnetkit[openvino] |
| executorch | XNNPACK | - | - | PT2E (XNNPACK quantizer) | resnetkit[executorch] |
| litert | XNNPACK (batch 1) | - | - | PT2E (litert-torch's quantizer) | resnetkit[litert] |
| coreml | ML program | - | ML program | - | resnetkit[coreml]; runs on Apple devices only |

int8 in PyTorch itself is not offered: torch.ao's FX quantization is deprecated, and its successor
(PT2E with torchao's X86InductorQuantizer) fails to annotate torchvision's own resnet18 with torch
2.14 + torchao 0.18 ("Input partition has more than one output node"), besides needing a
multi-minute torch.compile per model; ONNX Runtime and OpenVINO int8 are maintained and were faster
here (docs/deploy.md).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import BadFile, InvalidOption, MissingDependency
from ..targets import BACKEND_CHOICES, FORMAT_ROWS, PRECISIONS, RUNTIME_ROWS, FormatRow, RuntimeRow
from .common import importable

if TYPE_CHECKING:
    from torch import nn

    from ..card import ModelCard

# The table is data: each row names its leaf module (runtimes/<leaf>.py) and the leaf's functions, which
# are imported when first called. So the table, and every command-line check made from it (--format,
# --backend, bench's modes), loads neither torch nor a runtime.


def leaf(name: str) -> ModuleType:
    """The runtime leaf module ``runtimes/<name>.py`` (imported on first use)."""
    return importlib.import_module(f"{__package__}.runtimes.{name}")


@dataclass(frozen=True)
class Runtime(RuntimeRow):
    """A row of targets.RUNTIME_ROWS with the functions of its leaf."""

    def build(self, model: nn.Module, precision: str, input_size: int, calibration: Any) -> nn.Module:
        """(BatchNorm-folded model, precision, input size, calibration batches) -> runner."""
        return leaf(self.name).build(model, precision, input_size, calibration)

    def save(self, runner: nn.Module, folder: Path) -> List[str]:
        """A built runner -> the files written into ``folder``."""
        return leaf(self.name).save_runner(runner, folder)

    def load(self, folder: Path, precision: str, blob_cache: Optional[Path]) -> nn.Module:
        """The runner kept in ``folder``."""
        return leaf(self.name).load_runner(folder, precision, blob_cache)


@dataclass(frozen=True)
class Format(FormatRow):
    """A row of targets.FORMAT_ROWS with the functions of its runtime's leaf."""

    @property
    def write(self) -> Callable[..., None]:
        return getattr(leaf(self.runtime), self.writer)

    @property
    def load(self) -> Optional[Callable[[Path], nn.Module]]:
        return getattr(leaf(self.runtime), self.loader) if self.loader else None


RUNTIMES: Dict[str, Runtime] = {r.name: Runtime(**vars(r)) for r in RUNTIME_ROWS}
FORMATS: Dict[str, Format] = {f.name: Format(**vars(f)) for f in FORMAT_ROWS}
__all__ = ["BACKEND_CHOICES", "FORMATS", "RUNTIMES", "Format", "Runtime"]
# The order optimize() tries when it cannot measure, fastest first by experience here (candidates only).
PREFERENCE = {
    "fp32": ("openvino", "onnxruntime", "pytorch"),
    "bf16": ("openvino", "pytorch"),
    "int8": ("openvino", "onnxruntime"),
}

# What optimize() picks without measuring, where this table knows the CPU: the fastest runtime per
# precision, measured by benchmarks/deploy_vs_hand.py (docs/deploy.md: resnet18 and resnet50 at batch 1
# and 16, x86-64 with AVX-512 VNNI and BF16). On x86-64 without VNNI or BF16 the gaps are smaller but
# in the same direction (OpenVINO's int8 and bf16 kernels fall back to AVX2/AVX-512 fp32 paths that
# still run the fused graph); on any other kind of CPU (ARM) the table has no row and optimize()
# measures every candidate.
_FP32 = "ONNX Runtime and OpenVINO ran fp32 within 4 % of each other (docs/deploy.md)"
MEASURED_FASTEST: Dict[str, Dict[str, Tuple[Tuple[str, str], ...]]] = {
    "x86_64": {
        "fp32": (("onnxruntime", _FP32), ("openvino", _FP32), ("pytorch", "the only other one installed")),
        "bf16": (("openvino", "OpenVINO bf16 ran 3.5-5.6x eager PyTorch (docs/deploy.md)"),
                 ("pytorch", "the only other one installed")),
        "int8": (("openvino", "OpenVINO int8 ran 3.8-7.8x ONNX Runtime's int8 (docs/deploy.md)"),
                 ("onnxruntime", "the only other one installed")),
    },
}  # fmt: skip
_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni", "amx_int8")}


def cpu_kind() -> str:
    """The kind of CPU the measured table is keyed by (the machine's architecture)."""
    import platform

    machine = platform.machine().lower()
    return "x86_64" if machine in ("x86_64", "amd64") else machine


def cpu_flags() -> Set[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def predicted(precision: str, candidates: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(runtime, why) the measured table predicts for this CPU among the installed ``candidates``;
    None when it does not know this kind of CPU (then optimize() measures)."""
    rows = MEASURED_FASTEST.get(cpu_kind(), {}).get(precision, ())
    for rank, (runtime, why) in enumerate(rows):
        if runtime in candidates:
            if rank:
                return runtime, f"{rows[0][0]} is not installed; {why}"
            has = sorted(cpu_flags() & set(_FLAGS.get(precision, ())))
            if precision in _FLAGS:
                why += f" on x86-64 with {' and '.join(_FLAGS[precision][:1])}; this CPU has " + (
                    ", ".join(has) if has else f"no {'/'.join(_FLAGS[precision])} (the same order, a smaller gap)"
                )
            return runtime, why
    return None


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
    if precision == "bf16" and runtime == "openvino" and not leaf("openvino").has_bf16():
        raise MissingDependency("this CPU has no bf16 support in OpenVINO (no AVX512-BF16/AMX): use fp32 or int8")


def available(precision: str) -> List[str]:
    """The runtimes that can run ``precision`` on this machine, fastest-first by experience."""
    check_precision(precision)
    out = []
    for runtime in PREFERENCE.get(precision, ()):
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
    """The exported format of an existing path (every format of the table with a loader), or None for
    anything else (weights, a run directory, a missing path)."""
    path = Path(path)
    if path.is_dir():
        for f in FORMATS.values():
            # An IR folder even when its .bin is missing: the loader names what is missing, rather than
            # the folder being taken for a training run without weights.
            if f.marker and (path.suffix.lower() == f.suffix if f.suffix else any(path.glob("*.xml"))):
                return f
        return None
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return FORMATS["openvino"]
    for f in FORMATS.values():
        if f.loader and f.suffix and f.suffix == suffix and f.runtime != "pytorch":
            return f
    if suffix == ".pt2":
        return FORMATS["pt2"]
    names = _zip_names(path)  # .pt: a TorchScript archive, or a checkpoint; any other name: look inside
    if any("/code/" in n for n in names):
        return FORMATS["torchscript"]
    if any(n.endswith(("serialized_exported_program.json", "models/model.json")) for n in names):
        return FORMATS["pt2"]
    return None


def describe_unrunnable(path: Path) -> Optional[ModelCard]:
    """For a file whose runtime does not run here (Core ML off Apple systems): its card, the file
    checked as far as it can be without running it (DamagedModel if not); None for any other path."""
    fmt = detect(Path(path))
    if fmt is None or RUNTIMES[fmt.runtime].runs_here:
        return None
    return leaf(fmt.runtime).describe(Path(path))


def load_exported(path: Path) -> nn.Module:
    """The exported artifact at ``path`` on its runtime; BadFile if it is not one."""
    fmt = detect(Path(path))
    if fmt is None or fmt.load is None:
        kinds = ", ".join(f.what for f in FORMATS.values() if f.load is not None)
        raise BadFile(f"{path}: not an exported model ({kinds})")
    return fmt.load(Path(path))
