"""``export()``: write a model in one of the formats of ``formats.FORMATS`` (ONNX, OpenVINO IR,
torch.export, TorchScript, safetensors), with its model card, and verify the file by loading it back
on the runtime that will run it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ..card import ModelCard
from ..errors import InvalidOption, ResnetkitError
from ..fileio import check_output_file
from .calibration import check_calibration
from .common import example_input
from .fold import fold_batchnorm
from .formats import FORMATS, RUNTIMES, Format, format_for_output, leaf, require

FP32_TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: Optional[float] = None  # against PyTorch, after re-loading the exported file
    checked_batches: Tuple[int, ...] = ()
    agreement: Optional[float] = None  # int8/bf16: top-1 agreement (%) with the fp32 model
    precision: str = "fp32"
    note: str = ""  # what was checked, where a runtime cannot run here (Core ML): predictions were not


def card_for_export(
    model: nn.Module, metadata: Union[None, ModelCard, Mapping[str, Any]], fmt: Format, precision: str, input_size: int
) -> ModelCard:
    """The card the file carries: the one given, or the model's own updated by a plain ``metadata``
    dict (arch, classes, preprocess, ...), with the format, precision and the model's real head."""
    own = getattr(model, "card", None)
    base = own if isinstance(own, ModelCard) else ModelCard(arch=getattr(model, "arch", None), num_classes=0)
    if isinstance(metadata, ModelCard):
        base = metadata
    elif metadata:
        base = ModelCard.from_metadata(dict(metadata), where="the export metadata", defaults=base)
    with torch.no_grad():
        outputs = int(model(example_input(model, input_size, 1)).shape[-1])
    pre = base.preprocess
    if pre.crop_size != input_size:  # the same preprocessing, at the size exported
        resized = max(input_size, round(input_size / pre.crop_pct))
        base = base.but(preprocess=replace(pre, crop_size=input_size, resize_size=resized))
    classes = base.classes if base.classes and len(base.classes) == outputs else None
    return base.but(
        format=fmt.name,
        precision=precision,
        num_classes=outputs,
        classes=classes,
        in_chans=int(getattr(model, "in_chans", base.in_chans)),
    )


def _check(model: nn.Module, path: Path, fmt: Format, precision: str) -> None:
    if precision not in fmt.precisions:
        offered = [f.name for f in FORMATS.values() if precision in f.precisions]
        raise InvalidOption(
            f"{fmt.name} stores {', '.join(fmt.precisions)}; {precision} exports to {' or '.join(offered) or 'none'}",
            field="precision",
        )
    if not fmt.marker:  # a folder format checks its folder where it writes it
        check_output_file(path, "export file")
    if model.training:
        raise InvalidOption(
            "the model is in train mode; call model.eval() before export (export bakes in BatchNorm's running statistics)"
        )
    if fmt.load is not None:
        require(fmt.runtime, precision)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _verify(model: nn.Module, path: Path, fmt: Format, precision: str, input_size: int, batches) -> ExportReport:
    runner = fmt.load(path)  # type: ignore[misc]
    if precision != "fp32":
        images = torch.cat(batches) if batches else example_input(model, input_size, 32)
        with torch.no_grad():
            agree = (runner(images).argmax(1) == model(images).argmax(1)).float().mean().item()
        return ExportReport(path, fmt.name, agreement=100.0 * agree, precision=precision)
    diff, scale = 0.0, 1.0
    with torch.no_grad():
        for b in CHECK_BATCHES:
            x = example_input(model, input_size, b)
            reference = model(x)
            diff = max(diff, float((runner(x) - reference).abs().max()))
            scale = max(scale, float(reference.abs().max()))
    # Relative to the size of the logits (at least 1): runtimes reorder float sums differently.
    tolerance = scale * FP32_TOLERANCE
    if diff > tolerance:
        _remove(path)
        raise ResnetkitError(
            f"exported {fmt.name} model differs from PyTorch by {diff:.2e} (> {tolerance}); the file was removed"
        )
    return ExportReport(path, fmt.name, diff, CHECK_BATCHES)


def export(
    model: nn.Module,
    path,
    metadata: Union[None, ModelCard, Mapping[str, Any]] = None,
    input_size: int = 224,
    verify: bool = True,
    precision: str = "fp32",
    calibration=None,
) -> ExportReport:
    """Write ``model`` to ``path``; the format follows the name: .onnx (ONNX, run by ONNX Runtime),
    .pt2 (``torch.export`` program), a folder name (OpenVINO IR), .pte (ExecuTorch, XNNPACK), .tflite (LiteRT),
    .mlpackage (Core ML), .pt (TorchScript, legacy) or .safetensors (the state_dict).

    Every runnable format gets a dynamic batch axis (LiteRT: one image; batches run image by image)
    and the model card (``metadata``: a ModelCard, or a dict of card fields over the model's own
    card), and is loaded back by its runtime and run at two batch sizes: for fp32 the max abs
    difference to PyTorch must be <= 1e-4 of the logits' size (the file is removed if not).
    ``precision="int8"`` (ONNX: ONNX Runtime static QDQ; OpenVINO: NNCF; ExecuTorch and LiteRT:
    PT2E) needs ``calibration`` (>= 32 images) and reports the file's top-1 agreement with the fp32 model on
    them; ``"bf16"`` (OpenVINO) reports the agreement on random images. A Core ML package cannot
    run outside Apple's systems: its spec, input, output and card are checked and ``report.note``
    says that predictions were not.
    """
    path = Path(path)
    fmt = format_for_output(path)
    _check(model, path, fmt, precision)
    if fmt.name == "safetensors" and not isinstance(metadata, ModelCard):
        from ..weights.io import save_safetensors

        save_safetensors(model.state_dict(), path, dict(metadata or {}))  # the caller's metadata, as given
        return ExportReport(path, fmt.name)
    batches = check_calibration(calibration) if precision == "int8" else None
    card = card_for_export(model, metadata, fmt, precision, input_size)
    # Runtimes get the BatchNorm-folded network (what they would fold themselves, done once, exactly).
    source = fold_batchnorm(model) if fmt.runtime != "pytorch" else model
    fmt.write(source, path, card, input_size, batches)
    if not verify or fmt.load is None:
        return ExportReport(path, fmt.name, precision=precision)
    if not RUNTIMES[fmt.runtime].runs_here:  # checked as far as possible without running it, and said so
        return ExportReport(path, fmt.name, precision=precision, note=leaf(fmt.runtime).check(path, card))
    return _verify(model, path, fmt, precision, input_size, batches)
