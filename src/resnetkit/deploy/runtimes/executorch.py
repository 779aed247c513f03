"""ExecuTorch: the .pte program (torch.export, lowered to the XNNPACK delegate, the CPU backend of
phones and boards), its int8 path (PT2E quantization with ExecuTorch's XNNPACK quantizer: int8
weights per channel, int8 activations calibrated on the calibration images) and the runner of
ExecuTorch's own Python runtime, which runs the same C++ loader and kernels a phone runs.

The model card travels inside the program, as a constant method ``resnetkit_card`` that returns its
JSON as bytes: a phone app reads it with ``module.execute("resnetkit_card")``. A .pte has no checksum
of its own, so the card records the file's own hash (deploy/sealed.py); a file damaged after export
is refused.

The batch axis is dynamic up to BATCH (ExecuTorch's XNNPACK delegate sizes its buffers for a bound);
larger batches run in chunks of BATCH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile, DamagedModel
from ...fileio import write_bytes
from ...quiet import no_warnings, third_party_output
from ..common import example_input, last_line, need, threads
from ..exported import ExportedModel, card_of, runner_card
from ..sealed import intact, placeholder, seal

EXTRA = "executorch"
CARD_METHOD = "resnetkit_card"
BATCH = 8  # the dynamic batch bound; bounds above 15 were cut to 15 by the XNNPACK delegate here


def _need(what: str = "ExecuTorch") -> None:
    need(("executorch",), EXTRA, what)


def _lower(program: torch.export.ExportedProgram, card_bytes: bytes) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    constant = {CARD_METHOD: torch.tensor(list(card_bytes), dtype=torch.uint8)}
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constant)
    return bytes(edge.to_executorch().buffer)


def _export(model: nn.Module, input_size: int) -> torch.export.ExportedProgram:
    x = example_input(model, input_size, 2)
    return torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=BATCH)},))


def _quantize(model: nn.Module, input_size: int, calibration: Sequence[torch.Tensor]) -> nn.Module:
    """The PT2E-quantized graph module (int8 weights per channel, int8 activations; the classifier
    in float), calibrated."""
    _need("int8 on ExecuTorch")
    need(("torchao",), EXTRA, "int8 on ExecuTorch")
    with third_party_output(), no_warnings():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ...progress import bar

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    # The classifier stays in float, as on ONNX Runtime: ~0.05 % of a ResNet-50's work, and quantizing
    # it cost 8 points of top-1 agreement on a digits-trained ResNet-50 here (90.0 % -> 98.4 %).
    quantizer.set_module_type(nn.Linear, None)
    with no_warnings():
        prepared = prepare_pt2e(_export(model, input_size).module(), quantizer)  # type: ignore[arg-type]
    images = torch.cat(list(calibration))
    shown = bar(total=len(images), desc="int8 calibration (ExecuTorch)", unit="img", leave=False)
    with torch.no_grad():
        for batch in images.split(BATCH):
            prepared(batch)
            shown.update(len(batch))
    shown.close()
    with no_warnings():
        return convert_pt2e(prepared)


def to_program(model: nn.Module, input_size: int, card: ModelCard, calibration=None) -> bytes:
    """The .pte bytes of ``model`` (fp32, or int8 when the card says so), carrying ``card`` and the
    file's own hash."""
    _need()
    source = _quantize(model, input_size, calibration or []) if card.precision == "int8" else model
    embedded = placeholder(card.to_dict())
    with third_party_output(), no_warnings():
        data = _lower(_export(source, input_size), embedded)
    return seal(data, embedded)


class ProgramRunner(nn.Module):
    """An ExecuTorch program's ``forward`` behind a module interface, batches above BATCH in chunks."""

    def __init__(self, program, data: bytes) -> None:
        super().__init__()
        self.runtime = program
        self.program_bytes = data
        with third_party_output():
            self.method = program.load_method("forward")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous()
        outs = [self.method.execute([chunk.contiguous()])[0] for chunk in x.split(BATCH)]
        return torch.cat(outs) if len(outs) > 1 else outs[0]


def _same_threads() -> None:
    """XNNPACK's thread pool takes the process's thread setting, as every other runtime does
    (torch.set_num_threads, OMP_NUM_THREADS, bench --threads); its default is every core. The pool
    is reset only between programs' loads, never while one runs (the call is ExecuTorch's private,
    hence the guard)."""
    try:
        from executorch.extension.pybindings import portable_lib as lib

        if lib._threadpool_get_thread_count() != threads():
            lib._unsafe_reset_threadpool(threads())
    except (ImportError, AttributeError):
        pass


def _program(data: bytes, where: Path):
    _need()
    try:
        with third_party_output(), no_warnings():
            from executorch.runtime import Runtime

            _same_threads()
            return Runtime.get().load_program(data)
    except Exception as exc:  # the runtime raises RuntimeError with its loader's status
        raise BadFile(
            f"{where}: not a valid ExecuTorch program ({last_line(exc)}: truncated?); export it again"
        ) from None


def build(
    folded: nn.Module, precision: str, input_size: int, calibration: Optional[Sequence[torch.Tensor]]
) -> ProgramRunner:
    """An ExecuTorch runner of a BatchNorm-folded model, built in memory (fp32 or int8)."""
    card = runner_card(folded, "executorch", precision)
    data = to_program(folded, input_size, card, calibration)
    return ProgramRunner(_program(data, Path("<memory>")), data)


def save_runner(run: nn.Module, folder: Path) -> List[str]:
    (folder / "model.pte").write_bytes(run.program_bytes)  # type: ignore[arg-type]
    return ["model.pte"]


def load_runner(folder: Path, precision: str, blob_cache: Optional[Path] = None) -> nn.Module:
    data = (folder / "model.pte").read_bytes()
    return ProgramRunner(_program(data, folder / "model.pte"), data)


# ---- files ------------------------------------------------------------------------------------------


def write(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    write_bytes(path, to_program(model, input_size, card, calibration), "ExecuTorch program")


def read_card(program, path: Path) -> bytes:
    """The card's JSON bytes as the program returns them; b"" for a program without one."""
    if CARD_METHOD not in program.method_names:
        return b""
    try:
        with third_party_output():
            value = program.load_method(CARD_METHOD).execute([])[0]
        return bytes(value.tolist())
    except Exception as exc:
        raise DamagedModel(f"{path}: its model card cannot be read ({last_line(exc)}); export it again") from None


def load(path: Path) -> ExportedModel:
    """A .pte file on ExecuTorch's runtime, checked against the hash its card records."""
    data = path.read_bytes()
    program = _program(data, path)
    raw = read_card(program, path)
    if not raw:  # ExecuTorch's own export: nothing says the input size or the preprocessing
        raise BadFile(
            f"{path}: an ExecuTorch program without resnetkit's model card (input size, preprocessing, classes); "
            "export it with resnetkit export --format executorch"
        )
    if not intact(data, raw):
        raise DamagedModel(
            f"{path}: the program does not match the hash recorded at export (the file was damaged after it "
            "was written); export it again"
        )
    try:
        run = ProgramRunner(program, data)
    except Exception as exc:
        raise BadFile(f"{path}: its forward method does not load ({last_line(exc)}); export it again") from None
    card = card_of(json.loads(raw.decode()), path, "executorch", run)
    return ExportedModel(run, card, path, runtime=program)
