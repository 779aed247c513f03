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

from ..card import ModelCard
from ..errors import InvalidOption, MissingDependency
from .export import export
from .fold import fold_batchnorm
from .formats import FORMATS, RUNTIMES, require
from .runtimes.pytorch import ChannelsLast


def table_rows() -> Tuple[Tuple[str, str], ...]:
    """(format, precision) of every row, in table order: the weights file run by PyTorch ("pytorch",
    at each precision PyTorch offers), then each format of another runtime at each precision it stores."""
    pytorch = tuple(("pytorch", p) for p in RUNTIMES["pytorch"].precisions)
    others = tuple((f.name, p) for f in FORMATS.values() if f.runtime != "pytorch" for p in f.precisions)
    return pytorch + others


def runtime_of(fmt: str) -> str:
    return "pytorch" if fmt == "pytorch" else FORMATS[fmt].runtime


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


def _predict(runner: Callable, images: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Each image's answer: its top-1 class, or (multi-label) its label set at probability 0.5."""
    with torch.no_grad():
        logits = torch.cat([runner(b).float() for b in images.split(16)])
    return logits > 0 if multilabel else logits.argmax(1)


def _share_same(a: torch.Tensor, b: torch.Tensor) -> float:
    """% of images with the same answer (the whole label set, for multi-label answers)."""
    same = (a == b).all(1) if a.dim() > 1 else a == b
    return 100.0 * float(same.float().mean())


def _times(runner: Callable, x: torch.Tensor, runs: int, warmup: int) -> List[float]:
    from ..measure import time_blocks

    return sorted(time_blocks({"runner": runner}, x, runs, warmup, rounds=1)["runner"])


def _artifact(fmt: str, precision: str, model: nn.Module, card: ModelCard, calibration, input_size: int, folder: Path):
    """Write the file for one row and load it back the way `predict --weights FILE` would."""
    if fmt == "pytorch":
        path = folder / "model.safetensors"
        if not path.exists():
            export(model, path, metadata=card)
        runner = model if precision == "fp32" else ChannelsLast(fold_batchnorm(model), bf16=True).eval()
        return path, runner
    require(runtime_of(fmt), precision)
    path = folder / f"model_{precision}{FORMATS[fmt].suffix}"
    export(model, path, metadata=card, input_size=input_size, precision=precision, calibration=calibration)
    return path, FORMATS[fmt].load(path)  # type: ignore[misc]


def _flops_model(model: nn.Module, given: Optional[nn.Module]) -> nn.Module:
    """The PyTorch network FLOPs are counted on: the model, or the one an exported file came from."""
    if given is None:
        return model
    from ..models import build_architecture

    arch = getattr(given, "arch", None)
    if not arch:
        raise InvalidOption(f"{getattr(given, 'path', 'the file')}: no architecture in its metadata to count FLOPs")
    return build_architecture(arch, num_classes=getattr(given, "num_classes", 1000)).eval()


@dataclass
class Bench:
    """What every row is measured on: the images, their labels, the fp32 reference, the timing settings."""

    images: torch.Tensor
    targets: torch.Tensor
    reference: Optional[torch.Tensor]
    batch: int
    runs: int
    warmup: int
    roof: float

    @property
    def multilabel(self) -> bool:
        return self.targets.dim() == 2  # multi-hot targets

    def row(self, fmt: str, precision: str, path: Path, runner: Callable) -> FormatRow:
        predictions = _predict(runner, self.images, self.multilabel)
        one = self.images[:1].contiguous()
        many = self.images[: self.batch] if len(self.images) >= self.batch else one.expand(self.batch, -1, -1, -1)
        latency = _times(runner, one, self.runs, self.warmup)
        rate = self.batch / statistics.median(
            _times(runner, many.contiguous(), max(3, self.runs // 2), max(1, self.warmup))
        )
        agreement = float("nan")
        if self.reference is not None:
            agreement = _share_same(predictions, self.reference)
        return FormatRow(
            fmt,
            precision,
            _size_mb(path),
            _share_same(predictions, self.targets > 0.5 if self.multilabel else self.targets),
            agreement,
            1000 * statistics.median(latency),
            1000 * latency[min(len(latency) - 1, int(round(0.95 * (len(latency) - 1))))],
            rate,
            float("nan"),
            100.0 * rate / self.roof,
        )


def compare_formats(
    model: nn.Module,
    card: ModelCard,
    images: torch.Tensor,
    targets: torch.Tensor,
    calibration: Sequence[torch.Tensor],
    rows: Optional[Sequence[Tuple[str, str]]] = None,
    batch: int = 16,
    runs: int = 10,
    warmup: int = 3,
    log: Callable[[str], None] = lambda s: None,
    given: Optional[nn.Module] = None,
) -> Dict:
    """Measure each (format, precision) of ``rows`` (default: every row of ``table_rows()``) that this
    machine can run; the rest are listed under "skipped" with the reason (a runtime not installed, no
    bf16 on this CPU). ``given``: an exported model measured as it is, in one row, instead; agreement
    and x eager then have no fp32 PyTorch reference and are NaN."""
    from ..measure import count_macs
    from .bench import cpu_peak

    input_size = int(images.shape[-1])
    macs, _ = count_macs(_flops_model(model, given), (input_size, input_size), getattr(model, "in_chans", 3))
    peak, reference = cpu_peak(), _predict(model, images, targets.dim() == 2) if given is None else None
    bench = Bench(images, targets, reference, batch, runs, warmup, peak.gflops * 1e9 / (2 * macs))
    if given is not None:
        given_card: ModelCard = given.card  # type: ignore[assignment]
        rows = [(given_card.format, given_card.precision)]
    measured: List[FormatRow] = []
    skipped: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="resnetkit-bench-") as tmp:
        for fmt, precision in rows or table_rows():
            if not RUNTIMES[runtime_of(fmt)].runs_here:
                skipped[f"{fmt} {precision}"] = f"{RUNTIMES[runtime_of(fmt)].label} does not run on this machine"
                continue
            log(f"exporting and measuring {fmt} {precision}")
            try:
                if given is not None:
                    path, runner = Path(given.path), given  # type: ignore[arg-type]
                else:
                    path, runner = _artifact(fmt, precision, model, card, calibration, input_size, Path(tmp))
            except MissingDependency as exc:
                skipped[f"{fmt} {precision}"] = str(exc)
                continue
            measured.append(bench.row(fmt, precision, path, runner))
            del runner
    eager = next((r.images_per_s for r in measured if (r.format, r.precision) == ("pytorch", "fp32")), None)
    for row in measured:
        row.x_eager = row.images_per_s / eager if eager else float("nan")
    return {
        "images": len(images),
        "batch": batch,
        "input_size": input_size,
        "threads": torch.get_num_threads(),
        "gmacs": macs / 1e9,
        "peak": asdict(peak),
        "roof_images_per_s": bench.roof,
        "rows": [asdict(r) for r in measured],
        "skipped": skipped,
        "multilabel": targets.dim() == 2,
    }


def format_table(result: Dict, data_name: str) -> str:
    b = result["batch"]
    multilabel = result.get("multilabel", False)
    accuracy = "exact-match %" if multilabel else "acc@1 %"
    lines = [
        f"| format | precision | file MB | {accuracy} | agreement % | p50 ms bs1 | p95 ms bs1 | img/s bs{b} "
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
        f"{accuracy[:-2]} and agreement on {result['images']} images of {data_name}; agreement = same "
        + ("label set (at probability 0.5)" if multilabel else "top-1")
        + " as fp32 PyTorch.",
        f"roof: {peak['gflops']:.0f} GFLOP/s ({peak['assumptions']}) / {2 * result['gmacs']:.3f} GFLOP per image "
        f"= {result['roof_images_per_s']:.1f} img/s.",
    ]
    for name, why in result["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)
