"""`resnetkit bench --weights SRC`: one row per (format, precision) that runs here, each measured
on the file it writes, as a user would deploy it: file size, acc@1 on validation data, top-1
agreement with fp32 PyTorch, latency at batch 1, throughput at batch 16, x eager, % of the roof."""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import InvalidOption, MissingDependency

# (format, precision), in the order of the table. "pytorch" runs the safetensors file in PyTorch.
ROWS: Tuple[Tuple[str, str], ...] = (
    ("pytorch", "fp32"),
    ("pytorch", "bf16"),
    ("onnx", "fp32"),
    ("onnx", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
)
FILE_NAMES = {
    "pytorch": "model.safetensors",
    "onnx": "model_{precision}.onnx",
    "openvino": "model_{precision}_openvino",
}
RUNTIME_OF = {"pytorch": "pytorch", "onnx": "onnxruntime", "openvino": "openvino"}


@dataclass
class FormatRow:
    format: str
    precision: str
    file_mb: float
    acc1: float
    agreement: float  # top-1 agreement (%) with fp32 PyTorch on the validation images
    p50_ms_bs1: float
    p95_ms_bs1: float
    images_per_s: float  # at the throughput batch size
    x_eager: float
    pct_of_roof: float


def _size_mb(path: Path) -> float:
    if path.suffix == ".xml":  # an OpenVINO IR: the .xml and its .bin
        path = path.parent
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def _predict(runner: Callable, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([runner(b).argmax(1) for b in images.split(16)])


def _times(runner: Callable, x: torch.Tensor, runs: int, warmup: int) -> List[float]:
    from ..measure import time_blocks

    return sorted(time_blocks({"runner": runner}, x, runs, warmup, rounds=1)["runner"])


def _artifact(fmt: str, precision: str, model: nn.Module, meta: dict, calibration, input_size: int, folder: Path):
    """Write the file for one row and load it back the way `predict --weights FILE` would."""
    from .backends import ChannelsLast, require
    from .export import export
    from .runtimes import load_exported

    path = folder / FILE_NAMES[fmt].format(precision=precision)
    if fmt == "pytorch":
        if not path.exists():
            export(model, path, metadata={k: str(v) for k, v in meta.items()})
        from .fold import fold_batchnorm

        return path, (model if precision == "fp32" else ChannelsLast(fold_batchnorm(model), bf16=True).eval())
    require(RUNTIME_OF[fmt], precision)
    export(model, path, metadata=meta, input_size=input_size, precision=precision, calibration=calibration)
    return path, load_exported(path)


def compare_formats(
    model: nn.Module,
    meta: dict,
    images: torch.Tensor,
    targets: torch.Tensor,
    calibration: Sequence[torch.Tensor],
    rows: Sequence[Tuple[str, str]] = ROWS,
    batch: int = 16,
    runs: int = 10,
    warmup: int = 3,
    log: Callable[[str], None] = lambda s: None,
    given: Optional[nn.Module] = None,
) -> Dict:
    """Measure each (format, precision) of ``rows`` that this machine can run; the rest are
    listed under "skipped" with the reason (a runtime not installed, no bf16 on this CPU).
    ``given``: an exported model (``load_exported``) measured as it is, in one row, instead;
    agreement and x eager then have no fp32 PyTorch reference and are NaN."""
    from ..measure import count_macs
    from .bench import cpu_peak

    input_size = int(images.shape[-1])
    reference_model = model
    if given is not None:  # FLOPs are counted on the PyTorch network the file was exported from
        from ..models import build_architecture

        arch = getattr(given, "arch", None)
        if not arch:
            raise InvalidOption(f"{getattr(given, 'path', 'the file')}: no architecture in its metadata to count FLOPs")
        reference_model = build_architecture(arch, num_classes=getattr(given, "num_classes", 1000)).eval()
    macs, _ = count_macs(reference_model, (input_size, input_size), getattr(model, "in_chans", 3))
    peak = cpu_peak()
    roof = peak.gflops * 1e9 / (2 * macs)
    reference = _predict(model, images) if given is None else None
    one = images[:1].contiguous()
    many = images[:batch] if len(images) >= batch else images[:1].expand(batch, -1, -1, -1)
    many = many.contiguous()
    measured: List[FormatRow] = []
    skipped: Dict[str, str] = {}
    eager_rate: Optional[float] = None
    with tempfile.TemporaryDirectory(prefix="resnetkit-bench-") as tmp:
        if given is not None:
            cfg = getattr(given, "pretrained_cfg", {})
            rows = [(str(cfg.get("format")), str(cfg.get("precision", "fp32")))]
        for fmt, precision in rows:
            name = f"{fmt} {precision}"
            try:
                log(f"exporting and measuring {name}")
                if given is not None:
                    path, runner = Path(given.path), given  # type: ignore[arg-type]
                else:
                    path, runner = _artifact(fmt, precision, model, meta, calibration, input_size, Path(tmp))
            except MissingDependency as exc:
                skipped[name] = str(exc)
                continue
            predictions = _predict(runner, images)
            latency = _times(runner, one, runs, warmup)
            rate = batch / statistics.median(_times(runner, many, max(3, runs // 2), max(1, warmup)))
            if (fmt, precision) == ("pytorch", "fp32"):
                eager_rate = rate
            measured.append(
                FormatRow(
                    fmt,
                    precision,
                    _size_mb(path),
                    100.0 * float((predictions == targets).float().mean()),
                    100.0 * float((predictions == reference).float().mean()) if reference is not None else float("nan"),
                    1000 * statistics.median(latency),
                    1000 * latency[min(len(latency) - 1, int(round(0.95 * (len(latency) - 1))))],
                    rate,
                    float("nan"),
                    100.0 * rate / roof,
                )
            )
            del runner
    for row in measured:
        row.x_eager = row.images_per_s / eager_rate if eager_rate else float("nan")
    return {
        "images": len(images),
        "batch": batch,
        "input_size": input_size,
        "threads": torch.get_num_threads(),
        "gmacs": macs / 1e9,
        "peak": asdict(peak),
        "roof_images_per_s": roof,
        "rows": [asdict(r) for r in measured],
        "skipped": skipped,
    }


def format_table(result: Dict, data_name: str) -> str:
    b = result["batch"]
    lines = [
        f"| format | precision | file MB | acc@1 % | agreement % | p50 ms bs1 | p95 ms bs1 | img/s bs{b} "
        "| x eager | % of fp32 roof |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        agreement = "-" if math.isnan(r["agreement"]) else f"{r['agreement']:.2f}"
        x_eager = "-" if math.isnan(r["x_eager"]) else f"{r['x_eager']:.2f}x"
        lines.append(
            f"| {r['format']} | {r['precision']} | {r['file_mb']:.1f} | {r['acc1']:.2f} | {agreement} | "
            f"{r['p50_ms_bs1']:.2f} | {r['p95_ms_bs1']:.2f} | {r['images_per_s']:.1f} | {x_eager} | "
            f"{r['pct_of_roof']:.0f} % |"
        )
    peak = result["peak"]
    lines += [
        "",
        f"acc@1 and agreement on {result['images']} images of {data_name}; agreement = same top-1 as fp32 PyTorch.",
        f"roof: {peak['gflops']:.0f} GFLOP/s ({peak['assumptions']}) / {2 * result['gmacs']:.3f} GFLOP per image "
        f"= {result['roof_images_per_s']:.1f} img/s.",
    ]
    for name, why in result["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)
