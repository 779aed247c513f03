"""Inference benchmark: every mode side by side in one process, against the machine's measured fp32 roof."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..errors import InvalidOption
from ..measure import time_blocks
from ..models import ResNetBase
from ..progress import bar
from .fold import fold_batchnorm
from .formats import available
from .modes import DEFAULT_MODES, MODES, RUNTIME_MODES
from .optimize import build
from .runtimes.pytorch import ChannelsLast

ROOF_CHANNELS, ROOF_SIDE = 1024, 64  # a 1x1 convolution 1024 -> 1024 on a 64x64 map: 8.6 GFLOP
ROOF_REPEATS = 5


@dataclass
class Peak:
    """The fp32 roof of this machine, measured (not estimated from nominal clocks and unit counts)."""

    cores: int
    gflops: float
    assumptions: str  # how it was measured


def cpu_peak(cores: Optional[int] = None) -> Peak:
    """fp32 roof: the best of a few large 1x1 convolutions in channels_last (a pure matrix product
    that PyTorch hands to oneDNN, the library its convolutions run on: as close to FMA-bound as a
    real kernel gets here; torch.mm goes to a BLAS that is slower on some CPUs), at the current
    thread count, in the same process as the models it is compared with."""
    import torch.nn.functional as F

    cores = cores or torch.get_num_threads()
    x = torch.randn(1, ROOF_CHANNELS, ROOF_SIDE, ROOF_SIDE).contiguous(memory_format=torch.channels_last)
    w = torch.randn(ROOF_CHANNELS, ROOF_CHANNELS, 1, 1).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.no_grad():
        F.conv2d(x, w)  # warm-up
        for _ in range(ROOF_REPEATS):
            t = time.perf_counter()
            F.conv2d(x, w)
            best = min(best, time.perf_counter() - t)
    gflops = 2 * ROOF_CHANNELS**2 * ROOF_SIDE**2 / best / 1e9
    method = (
        f"measured: best of {ROOF_REPEATS} fp32 1x1 convolutions {ROOF_CHANNELS}->{ROOF_CHANNELS} channels on a "
        f"{ROOF_SIDE}x{ROOF_SIDE} map (channels_last, oneDNN) on {cores} threads in this process"
    )
    return Peak(cores, gflops, method)


@dataclass
class BenchRow:
    arch: str
    mode: str
    batch: int
    p50_ms: float
    p95_ms: float
    images_per_s: float
    ratio_to_eager: float
    pct_of_fp32_peak: float

    def to_dict(self) -> dict:
        return asdict(self)


def default_modes() -> List[str]:
    """The modes timed when none are named: those of DEFAULT_MODES whose runtime is installed."""
    return [m for m in DEFAULT_MODES if m not in RUNTIME_MODES or RUNTIME_MODES[m][0] in available(RUNTIME_MODES[m][1])]


def skipped_modes() -> Dict[str, str]:
    """The default modes that cannot run here, each with the reason (the extra to install)."""
    from ..errors import MissingDependency
    from .formats import require

    out = {}
    for mode in DEFAULT_MODES:
        if mode in RUNTIME_MODES:
            try:
                require(*RUNTIME_MODES[mode])
            except MissingDependency as exc:
                out[mode] = str(exc)
    return out


def build_runner(mode: str, model: nn.Module, input_size: int, calibration: Optional[torch.Tensor]) -> Callable:
    if mode == "eager":
        return model
    if mode == "channels_last":
        return ChannelsLast(model)
    if mode == "fused":
        return ChannelsLast(fold_batchnorm(model))
    if mode == "compile":
        return torch.compile(ChannelsLast(fold_batchnorm(model)))
    if mode in RUNTIME_MODES:
        backend, precision = RUNTIME_MODES[mode]
        batches = calibration.split(16) if calibration is not None and precision == "int8" else None
        return build(backend, precision, model, input_size, batches)
    raise InvalidOption(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def benchmark(
    arch: str,
    batch_sizes: Sequence[int] = (1, 16),
    input_size: int = 224,
    modes: Sequence[str] = DEFAULT_MODES,
    threads: Optional[int] = None,
    runs: int = 10,
    warmup: int = 3,
    model: Optional[ResNetBase] = None,
    log: Callable[[str], None] = lambda s: None,
    device: Optional[torch.device] = None,
) -> Dict:
    """Measure each mode at each batch size (warm-up, then ``runs`` timed calls; median and p95).
    On a CUDA ``device`` the PyTorch modes run on the GPU; the runtimes' modes are CPU-only."""
    from ..models import build_architecture

    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InvalidOption(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidOption(f"threads must be an integer >= 1, got {threads!r}", field="threads")
    if not isinstance(input_size, int) or input_size < 32:
        raise InvalidOption(
            f"input_size must be an integer >= 32 (pixels; the network reduces it 32x), got {input_size!r}",
            field="input_size",
        )
    for name, value in (("runs", runs), ("warmup", warmup)):
        if not isinstance(value, int) or value < (1 if name == "runs" else 0):
            raise InvalidOption(f"{name} must be an integer >= {1 if name == 'runs' else 0}, got {value!r}", field=name)
    if not batch_sizes or any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise InvalidOption(f"batch_size must be positive integers, got {list(batch_sizes)}", field="batch_size")
    previous_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = (model or build_architecture(arch)).eval()
        device = torch.device(device or "cpu")
        if device.type != "cpu":
            cpu_only = [m for m in modes if m in RUNTIME_MODES and RUNTIME_MODES[m][0] != "pytorch"]
            if cpu_only:
                raise InvalidOption(f"{', '.join(cpu_only)} run on the CPU; leave them out with --device {device.type}")
        return _measure(arch, model, batch_sizes, input_size, modes, runs, warmup, log, device)
    finally:
        torch.set_num_threads(previous_threads)


def _prepare(modes: Sequence[str], model: nn.Module, input_size: int, calibration, log, shown) -> Dict[str, Callable]:
    runners = {}
    for mode in modes:
        log(f"preparing {mode}")
        shown.set_postfix_str(f"preparing {mode}")
        runners[mode] = build_runner(mode, model, input_size, calibration)
        shown.update()
    return runners


def _measure(
    arch: str,
    model: ResNetBase,
    batch_sizes: Sequence[int],
    input_size: int,
    modes: Sequence[str],
    runs: int,
    warmup: int,
    log: Callable[[str], None],
    device: torch.device,
) -> Dict:
    from ..measure import count_macs

    macs, _ = count_macs(model, (input_size, input_size), model.in_chans)
    peak = cpu_peak()
    peak_img_s = peak.gflops * 1e9 / (2 * macs)
    gen = torch.Generator().manual_seed(0)
    int8 = any("int8" in m for m in modes)
    calibration = torch.randn(32, model.in_chans, input_size, input_size, generator=gen) if int8 else None
    rows: List[BenchRow] = []
    shown = bar(total=len(modes) + len(batch_sizes), desc="bench", unit="step", leave=False)
    runners = _prepare(modes, model.to(device), input_size, calibration, log, shown)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for batch in batch_sizes:
        x = torch.randn(batch, model.in_chans, input_size, input_size, generator=gen).to(device)
        log(f"timing {', '.join(modes)} at batch {batch}")
        shown.set_postfix_str(f"timing batch {batch}")
        times = time_blocks(runners, x, runs, warmup, rounds=2, sync=sync)
        shown.update()
        eager_rate = batch / statistics.median(times["eager"]) if "eager" in times else None
        for mode in modes:
            ts = sorted(times[mode])
            p50 = statistics.median(ts)
            p95 = ts[min(len(ts) - 1, int(round(0.95 * (len(ts) - 1))))]
            rate = batch / p50
            rows.append(
                BenchRow(
                    arch,
                    mode,
                    batch,
                    1000 * p50,
                    1000 * p95,
                    rate,
                    rate / eager_rate if eager_rate else float("nan"),
                    100 * rate / peak_img_s,
                )
            )
    shown.close()
    return {
        "arch": arch,
        "device": str(device),
        "input_size": input_size,
        "threads": torch.get_num_threads(),
        "gmacs": macs / 1e9,
        "peak": asdict(peak),
        "peak_img_s": peak_img_s,
        "rows": [r.to_dict() for r in rows],
    }


def markdown_table(results: Sequence[Dict]) -> str:
    lines = [
        "| model | batch | mode | p50 ms | p95 ms | images/s | x eager | % of fp32 roof |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(
                f"| {r['arch']} | {r['batch']} | {r['mode']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                f"{r['images_per_s']:.1f} | {r['ratio_to_eager']:.2f}x | {r['pct_of_fp32_peak']:.0f} % |"
            )
    peak = results[0]["peak"]
    lines.append("")
    lines.append(
        f"fp32 roof: {peak['gflops']:.0f} GFLOP/s ({peak['assumptions']}); "
        + "; ".join(f"{r['arch']}: {r['gmacs']:.3f} GMACs -> roof {r['peak_img_s']:.1f} img/s" for r in results)
    )
    return "\n".join(lines)
