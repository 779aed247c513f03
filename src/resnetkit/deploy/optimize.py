"""`optimize()`: the fastest correct inference runner for this machine, model, batch size and
precision, chosen by measuring the installed backends once and remembering the choice."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from ..errors import InvalidOption
from ..progress import bar
from . import runner_cache
from .calibration import check_calibration
from .common import example_input
from .fold import fold_batchnorm
from .formats import BACKEND_CHOICES, FORMATS, PREFERENCE, RUNTIMES, available, check_precision, predicted, require

__all__ = ["optimize", "quantize_int8", "build", "Choice", "cache_file"]

FP32_TOLERANCE = 1e-3  # relative to the logits' size: runtimes sum in different orders
AGREEMENT_SLACK = 5.0  # points of top-1 agreement a reduced-precision candidate may lose to the best one
WARMUP, ROUNDS = 2, 3
TIME_PER_RUNNER_S, MAX_RUNS = 1.0, 60


@dataclass
class Choice:
    """Which backend ``optimize()`` chose and why; ``str()`` gives a one-line account."""

    backend: str
    precision: str
    batch_size: int
    how: str  # "measured", "cached", "only one installed" or "asked for"
    images_per_s: Dict[str, float] = field(default_factory=dict)  # per measured backend
    rejected: Dict[str, str] = field(default_factory=dict)  # backend -> why it was not correct

    def __str__(self) -> str:
        text = f"{self.precision} on {self.backend} ({self.how}"
        if self.images_per_s:
            rates = ", ".join(f"{b} {r:.1f}" for b, r in sorted(self.images_per_s.items(), key=lambda kv: -kv[1]))
            text += f"; images/s at batch {self.batch_size}: {rates}"
        if self.rejected:
            text += "; rejected: " + ", ".join(f"{b} ({why})" for b, why in self.rejected.items())
        return text + ")"


def cache_file() -> Path:
    """Where choices are remembered: ``$RESNETKIT_HOME/optimize.json`` if set, else
    ``$XDG_CACHE_HOME/resnetkit/optimize.json`` (``~/.cache/resnetkit/optimize.json``)."""
    from ..home import cache_home

    return cache_home() / "optimize.json"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", *(p for r in RUNTIMES.values() if r.candidate for p in r.version_packages)):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def cache_key(model: nn.Module, precision: str, input_size: int, batch_size: int) -> str:
    """Speed depends on the machine, the thread count, the network's structure (not its weights),
    the input and batch size, the precision and the runtime versions; so does the key."""
    facts = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "structure": hashlib.sha256(repr(model).encode()).hexdigest()[:16],
        "input_size": input_size,
        "batch_size": batch_size,
        "precision": precision,
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache() -> Dict[str, dict]:
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again and rewrite it


def _remember(key: str, choice: Choice) -> None:
    from ..fileio import atomic_path

    data = _read_cache()
    data[key] = dict(asdict(choice), measured_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, "optimize cache") as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    except Exception:
        pass  # an unwritable cache only costs a measurement next time


def _probe(model: nn.Module, calibration, input_size: int) -> torch.Tensor:
    if calibration is not None:
        return torch.cat(check_calibration(calibration))[:32]
    return example_input(model, input_size, 16)


def _check(runner: nn.Module, reference: torch.Tensor, probe: torch.Tensor, precision: str) -> Optional[float]:
    """None if the runner's fp32 output differs beyond tolerance or is not finite; else its top-1
    agreement (%) with the fp32 model on the probe images."""
    with torch.no_grad():
        out = runner(probe)
    if out.shape != reference.shape or not torch.isfinite(out).all():
        return None
    if precision == "fp32":
        scale = max(1.0, float(reference.abs().max()))
        if float((out - reference).abs().max()) > FP32_TOLERANCE * scale:
            return None
    return 100.0 * float((out.argmax(1) == reference.argmax(1)).float().mean())


def time_per_runner_s() -> float:
    """Seconds of calls per candidate: ``$RESNETKIT_OPTIMIZE_SECONDS`` (e.g. 0.05 in tests, where
    the choice need not be precise), default 1."""
    text = os.environ.get("RESNETKIT_OPTIMIZE_SECONDS", "").strip()
    try:
        return float(text) if text else TIME_PER_RUNNER_S
    except ValueError:
        raise InvalidOption(f"RESNETKIT_OPTIMIZE_SECONDS={text!r} is not a number of seconds") from None


def _time(runners: Dict[str, nn.Module], x: torch.Tensor) -> Dict[str, float]:
    """images/s of each runner: a first short measurement, then, for fast calls, about a second
    of calls per runner (a few calls at batch 1 cannot tell runners 10 % apart)."""
    from ..measure import time_blocks

    times = time_blocks(runners, x, runs=ROUNDS * 2, warmup=WARMUP, rounds=ROUNDS)
    slowest = max(statistics.median(ts) for ts in times.values())
    runs = min(MAX_RUNS, int(time_per_runner_s() / max(slowest, 1e-6)))
    if runs > ROUNDS * 2:
        times = time_blocks(runners, x, runs=runs, warmup=1, rounds=ROUNDS)
    return {b: len(x) / statistics.median(ts) for b, ts in times.items()}


def build(
    backend: str,
    precision: str,
    model: nn.Module,
    input_size: int = 224,
    calibration=None,
    calibration_id: Optional[str] = None,
    cache: bool = True,
) -> nn.Module:
    """A runner of ``model`` (eval mode; not modified) on ``backend`` at ``precision``, built in memory;
    int8 needs ``calibration`` batches (or a callable giving them, called only when the runner is not
    in the cache of optimized models). Every runner takes float NCHW tensors (or, for a model with
    preprocessing fused in, uint8 crops) and returns float logits. ONNX Runtime and OpenVINO runners
    are kept in that cache (runner_cache.py) under a key of everything that determines them, and
    reused: ``calibration_id`` names the calibration set when it is known without computing it."""
    check_precision(precision)
    require(backend, precision)
    if model.training:
        raise InvalidOption("inference backends need the model in eval mode: call model.eval() first")
    runtime = RUNTIMES[backend]
    entry = None
    if cache and runtime.keeps:
        if precision == "int8" and calibration_id is None:
            calibration = check_calibration(calibration() if callable(calibration) else calibration)
            calibration_id = runner_cache.calibration_identity(calibration)
        entry = runner_cache.key(model, backend, precision, input_size, calibration_id if precision == "int8" else None)
        kept = runner_cache.get(entry, runtime.load, precision)
        if kept is not None:
            object.__setattr__(kept, "from_cache", True)
            return kept
    batches = None
    if precision == "int8":
        batches = check_calibration(calibration() if callable(calibration) else calibration)
    runner = runtime.build(fold_batchnorm(model), precision, input_size, batches)
    if entry is not None:
        card = getattr(model, "card", None)
        facts = {"backend": backend, "precision": precision, "input_size": int(input_size),
                 "arch": getattr(card, "arch", None), "source": getattr(card, "source", None),
                 "calibration": calibration_id if precision == "int8" else None}  # fmt: skip
        runner_cache.put(entry, runner, runtime.save, facts)
    return runner


def _attach(runner: nn.Module, choice: Choice) -> None:
    object.__setattr__(runner, "choice", choice)  # a plain attribute, outside the module's state


def _measure(
    model: nn.Module,
    precision: str,
    candidates: List[str],
    input_size: int,
    batch_size: int,
    calibration: Optional[List[torch.Tensor]],
    cache: bool = True,
) -> tuple:
    """Build every candidate, keep the correct ones, time them: (runners, rates, rejected)."""
    probe = _probe(model, calibration, input_size)
    with torch.no_grad():
        reference = model(probe)
    runners, agreements, rejected = {}, {}, {}
    shown = bar(total=len(candidates), desc=f"optimize {precision}", unit="backend", leave=False)
    for name in candidates:
        shown.set_postfix_str(f"building {name}")
        runner = build(name, precision, model, input_size, calibration, cache=cache)
        agreement = _check(runner, reference, probe, precision)
        shown.update()
        if agreement is None:
            rejected[name] = "output differs from fp32" if precision == "fp32" else "output not finite"
            continue
        runners[name], agreements[name] = runner, agreement
    shown.close()
    best_agreement = max(agreements.values(), default=0.0)
    for name, agreement in list(agreements.items()):
        if agreement < best_agreement - AGREEMENT_SLACK:
            rejected[name] = f"top-1 agreement {agreement:.1f} % vs {best_agreement:.1f} %"
            del runners[name]
    if not runners:
        raise InvalidOption(f"no backend produced correct {precision} output: {rejected}")
    x = _probe(model, None, input_size)[:1].expand(batch_size, -1, -1, -1).contiguous()
    return runners, _time(runners, x), rejected


def _check_arguments(model: nn.Module, precision: str, batch_size: int, backend: str) -> None:
    check_precision(precision)
    if backend not in BACKEND_CHOICES:
        edge = [r.name for r in RUNTIMES.values() if not r.candidate]
        raise InvalidOption(
            f"backend {backend!r} is not one of {', '.join(BACKEND_CHOICES)} ({', '.join(edge)} run the files "
            "resnetkit export writes)",
            field="backend",
        )
    if model.training:
        raise InvalidOption("optimize() needs the model in eval mode: call model.eval() first")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOption(f"batch_size must be an integer >= 1, got {batch_size!r}", field="batch_size")


def optimize(
    model: nn.Module,
    precision: str = "fp32",
    calibration=None,
    backend: str = "auto",
    input_size: Optional[int] = None,
    batch_size: int = 16,
    cache: bool = True,
    log: Optional[Callable[[str], None]] = None,
    calibration_id: Optional[str] = None,
) -> nn.Module:
    """The fastest correct inference runner of ``model`` for ``precision`` (fp32, bf16, int8).

    ``backend="auto"`` decides from what is known: a runtime already measured on this machine (the
    remembered choice), or the one a table measured on this CPU's kind predicts (formats.predicted:
    e.g. OpenVINO for int8 on x86-64 with AVX-512 VNNI, several times ONNX Runtime's speed there) -
    without building every candidate. Only when in doubt (a CPU the table does not know) does it
    build every installed backend that offers the precision, check each against the fp32 model (fp32:
    max difference <= 1e-3 of the logits' size; bf16/int8: top-1 agreement within 5 points of the
    best candidate), time them at ``batch_size`` and keep the fastest; ``backend="measure"`` does
    that always. A measured choice is remembered per machine, thread count, network structure,
    input size, batch size, precision and runtime versions (see ``cache_file()``). The runner itself
    is kept in the cache of optimized models (``runner_cache``; ``cache=False`` neither reads nor
    writes either cache). The runner's ``.choice`` says what was chosen and why (``log`` gets the
    same line). int8 needs ``calibration`` (>= 32 images, or a callable giving them, called only if
    the runner is not cached; ``calibration_id`` names the set when it is known without computing
    it). The input model is not modified.
    """
    _check_arguments(model, precision, batch_size, backend)
    if input_size is None:  # the calibration images' size, else ImageNet's 224
        known = _batches(calibration) if precision == "int8" else None
        calibration = known if known is not None else calibration
        input_size = int(known[0].shape[-1]) if known else 224
    say = log or (lambda s: None)
    if backend not in ("auto", "measure"):
        runner = build(backend, precision, model, input_size, calibration, calibration_id, cache)
        return _chosen(runner, Choice(backend, precision, batch_size, "asked for"), say)
    key = cache_key(model, precision, input_size, batch_size)
    choice = _decide(key, precision, batch_size, backend, cache)
    if choice is None:  # in doubt: every candidate built, checked and timed
        candidates = available(precision)
        say(f"optimize: measuring {precision} on {', '.join(candidates)} at batch {batch_size} (once; remembered)")
        batches = _batches(calibration) if precision == "int8" else None
        runners, rates, rejected = _measure(model, precision, candidates, input_size, batch_size, batches, cache)
        winner = max(rates, key=lambda b: rates[b])
        choice = Choice(winner, precision, batch_size, "measured", rates, rejected)
        if cache:
            _remember(key, choice)
        return _chosen(runners[winner], choice, say)
    runner = build(choice.backend, precision, model, input_size, calibration, calibration_id, cache)
    return _chosen(runner, choice, say)


def _batches(calibration) -> List[torch.Tensor]:
    """The calibration batches, checked (a callable is called)."""
    return check_calibration(calibration() if callable(calibration) else calibration)


def _decide(key: str, precision: str, batch_size: int, backend: str, cache: bool) -> Optional[Choice]:
    """The choice known without measuring - remembered here, the only candidate, or predicted by the
    measured table for this CPU - or None (then optimize() measures)."""
    candidates = available(precision)
    if not candidates:  # int8 with neither runtime installed: name what to install
        if precision not in PREFERENCE:  # fp16: a precision of exported files only (Core ML)
            files = ", ".join(f.name for f in FORMATS.values() if precision in f.precisions)
            raise InvalidOption(
                f"{precision} runs only from exported files ({files}); here use fp32, bf16 or int8", field="precision"
            )
        require(PREFERENCE[precision][0], precision)
    if backend == "measure":
        return None if len(candidates) > 1 else Choice(candidates[0], precision, batch_size, "only one installed")
    remembered = _read_cache().get(key) if cache else None
    if remembered and remembered.get("backend") in candidates:
        return Choice(remembered["backend"], precision, batch_size, "cached", remembered.get("images_per_s", {}))
    if len(candidates) == 1:
        return Choice(candidates[0], precision, batch_size, "only one installed")
    guess = predicted(precision, candidates)
    if guess is not None:
        return Choice(guess[0], precision, batch_size, f"predicted: {guess[1]}; --backend measure times them here")
    return None


def _chosen(runner: nn.Module, choice: Choice, say: Callable[[str], None]) -> nn.Module:
    if getattr(runner, "from_cache", False):
        choice.how += "; the optimized model from the cache"
    _attach(runner, choice)
    say(f"optimize: {choice}")
    return runner


def quantize_int8(model: nn.Module, calibration, backend: str = "auto") -> nn.Module:
    """An int8 runner of ``model`` (the original is untouched): post-training static quantization
    calibrated on ``calibration`` (a (N, C, H, W) tensor or batches, >= 32 images), on OpenVINO
    (NNCF) or ONNX Runtime; ``backend="auto"`` takes the faster one here (see ``optimize``)."""
    return optimize(model, "int8", calibration=calibration, backend=backend)
