"""An exported model (ONNX, OpenVINO IR, .pt2, TorchScript) behind a PyTorch-module interface, with
its model card: an ``InferenceModel`` like a ``ResNetBase``, so predict, eval, bench and serve run
either without asking which one they hold."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from ..card import ModelCard
from ..errors import DamagedModel, InvalidOption


def check_tensor_input(x: Any, in_chans: int) -> torch.Tensor:
    """A float (N, in_chans, H, W) tensor, or InvalidOption saying what was given and the fix."""
    if not isinstance(x, torch.Tensor):
        hint = "torch.from_numpy(x)" if type(x).__module__.startswith("numpy") else "torch.as_tensor(x)"
        raise InvalidOption(
            f"the model takes a torch.Tensor (N, {in_chans}, H, W), got {type(x).__module__}.{type(x).__name__}; "
            f"convert it with {hint}"
        )
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise InvalidOption(
            f"the model takes (N, {in_chans}, H, W) input, got shape {list(x.shape)}; add a batch dimension with "
            "x.unsqueeze(0) for one image, or permute channels-last input with x.permute(0, 3, 1, 2)"
        )
    if not x.is_floating_point():
        raise InvalidOption(
            f"the model takes floating-point input, got {x.dtype}; preprocess with model.card.preprocess"
        )
    return x


class ExportedModel(nn.Module):
    """An exported model run by its own runtime (CPU float tensors in, float logits out)."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor], card: ModelCard, path: Path, runtime: Any = None):
        super().__init__()
        self._run = run
        self.card = card
        self.path = Path(path)
        self.runtime = runtime  # the runtime's own object (an ONNX Runtime session, ...), for inspection

    @property
    def format(self) -> str:
        return self.card.format

    @property
    def arch(self) -> Optional[str]:
        return self.card.arch

    @property
    def num_classes(self) -> int:
        return self.card.num_classes

    @property
    def in_chans(self) -> int:
        return self.card.in_chans

    @property
    def pretrained_cfg(self) -> dict:
        return self.card.pretrained_cfg()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor_input(x, self.card.in_chans)
        return self._run(x.detach().to("cpu", torch.float32).contiguous())

    def extra_repr(self) -> str:
        return f"format={self.format!r}, path={str(self.path)!r}"


def runner_card(model: nn.Module, fmt: str, precision: str) -> ModelCard:
    """The card an in-memory runner's program carries: the model's own (if it has one) as ``fmt`` at
    ``precision``."""
    own = getattr(model, "card", None)
    base = own if isinstance(own, ModelCard) else ModelCard(arch=None, num_classes=0)
    return base.but(format=fmt, precision=precision)


def card_of(meta: Mapping[str, Any], path: Path, fmt: str, run: Callable[[torch.Tensor], torch.Tensor]) -> ModelCard:
    """The card recorded in an export's metadata; a file without resnetkit's metadata gets one from
    what the graph itself says (its class count, asked by running it)."""
    if meta.get("num_classes"):
        defaults = ModelCard(arch=None, num_classes=int(meta["num_classes"]), format=fmt)
    else:
        card = ModelCard.from_metadata(meta, where=str(path), defaults=ModelCard(arch=None, num_classes=0, format=fmt))
        size = card.input_size
        with torch.no_grad():
            classes = int(run(torch.zeros(1, card.in_chans, size, size)).shape[1])
        defaults = card.but(num_classes=classes, classes=None)
    return ModelCard.from_metadata(meta, where=str(path), defaults=defaults).but(format=fmt, source=str(path))


def verify_zip(path: Path, what: str, suffix: str) -> None:
    """DamagedModel unless every member of a zip archive (.pt2, TorchScript) passes its CRC check."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DamagedModel(
            f"{path}: not a readable {what} archive ({exc}: truncated, or not a {suffix}); export it again"
        ) from None
    if bad is not None:
        raise DamagedModel(f"{path}: the {what} archive is damaged (member {bad} fails its CRC check); export it again")
