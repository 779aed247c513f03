"""PyTorch as a runtime: the in-memory runner (BatchNorm folded, channels_last, optionally bf16
autocast), and the files PyTorch runs by itself: a ``torch.export`` program (.pt2), a TorchScript file
(.pt, legacy) and the weights (.safetensors)."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile
from ...fileio import atomic_path
from ..common import example_input, last_line
from ..exported import ExportedModel, card_of, verify_zip

EXTRA_FILE = "resnetkit.json"  # where .pt2 and TorchScript archives keep the model card


class ChannelsLast(nn.Module):
    """Runs a channels_last copy of ``model`` on channels_last input (optionally under bf16
    autocast), float32 out. The given model is not modified (``.to`` would convert it in place)."""

    def __init__(self, model: nn.Module, bf16: bool = False) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.bf16 = bf16
        self.in_chans = int(getattr(model, "in_chans", 3))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():  # uint8 NHWC crops (FusedInput) are channels_last once permuted
            x = x.contiguous(memory_format=torch.channels_last)
        if self.bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.model(x).float()
        return self.model(x)


def build(
    folded: nn.Module, precision: str, input_size: int, calibration: Optional[Sequence[torch.Tensor]]
) -> nn.Module:
    """The PyTorch runner of an already BatchNorm-folded model (fp32 or bf16)."""
    return ChannelsLast(folded, bf16=precision == "bf16").eval()


# ---- files ------------------------------------------------------------------------------------------


def write_pt2(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example_input(model, input_size),), dynamic_shapes=({0: batch},))
    with atomic_path(path, "torch.export program") as tmp:
        torch.export.save(program, str(tmp), extra_files={EXTRA_FILE: card.to_json()})


def write_torchscript(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit announces its deprecation: a legacy format here
        scripted = torch.jit.trace(model, example_input(model, input_size), check_trace=False)
        with atomic_path(path, "TorchScript file") as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={EXTRA_FILE: card.to_json()})


def write_safetensors(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    from ...weights.io import save_safetensors

    save_safetensors(model.state_dict(), path, card)


def _card_json(text: str) -> dict:
    return json.loads(text) if text else {}


def load_pt2(path: Path) -> ExportedModel:
    verify_zip(path, "torch.export", ".pt2")
    extra = {EXTRA_FILE: ""}
    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.ERROR)  # it logs the reader's failure as a warning before raising it
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:  # torch.export raises a variety of types for foreign files
        raise BadFile(
            f"{path}: not a readable torch.export program ({last_line(exc)}: truncated, or not a .pt2); export it again"
        ) from None
    finally:
        log.setLevel(level)
    module = program.module()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return ExportedModel(run, card_of(_card_json(extra[EXTRA_FILE]), path, "pt2", run), path)


def load_torchscript(path: Path) -> ExportedModel:
    verify_zip(path, "TorchScript", ".pt")
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load announces its deprecation
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as exc:  # TorchScript raises RuntimeErrors of its own
            raise BadFile(f"{path}: not a readable TorchScript file ({last_line(exc)}); export it again") from None
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return ExportedModel(run, card_of(_card_json(extra[EXTRA_FILE]), path, "torchscript", run), path)
