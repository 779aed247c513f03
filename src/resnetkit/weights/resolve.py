"""Turn what a user passes as ``--weights`` (run directory, file, catalog name) into a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from ..errors import ResnetkitError
from ..models import get_model, group_norm, FrozenBatchNorm2d
from .io import read_weights_file
from .loading import identify_architecture, load_weights

NORM_LAYERS = {"batch": None, "group": group_norm, "frozen": FrozenBatchNorm2d}


@dataclass
class LoadedWeights:
    """A state_dict plus what is known about it (arch, classes, preprocessing)."""

    state: Dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    source: str = ""

    @property
    def arch(self) -> Optional[str]:
        return self.meta.get("arch") or identify_architecture(self.state)

    @property
    def classes(self) -> Optional[List[str]]:
        """Class names from the metadata; a bare 1000-way checkpoint is taken to be ImageNet-1k."""
        if self.meta.get("classes"):
            return self.meta["classes"]
        if self.num_classes == 1000:
            from .catalog import imagenet_classes

            return imagenet_classes()
        return None

    @property
    def num_classes(self) -> int:
        if "num_classes" in self.meta:
            return int(self.meta["num_classes"])
        fc = self.state.get("fc.weight")
        return int(fc.shape[0]) if fc is not None else 0


def read_source(source: str, progress: bool = True) -> LoadedWeights:
    """Read weights from a training run directory, a .safetensors/.pt/.pth file, or a catalog name."""
    path = Path(source)
    if path.is_dir():
        for name in ("model.safetensors", "best.pt", "last.pt"):
            if (path / name).is_file():
                state, meta = read_weights_file(path / name)
                return LoadedWeights(state, meta, str(path / name))
        raise ResnetkitError(f"{path}: no model.safetensors, best.pt or last.pt in this directory; is it a training run?")
    if path.is_file():
        state, meta = read_weights_file(path)
        return LoadedWeights(state, meta, str(path))
    from .catalog import find_weights
    from .download import fetch_url

    if source.startswith(("http://", "https://")):
        state, meta = read_weights_file(fetch_url(source, progress=progress))
        return LoadedWeights(state, meta, source)
    entry = find_weights(source)
    if entry is None:
        raise ResnetkitError(
            f"--weights {source!r} is neither a file, a run directory nor a catalog name "
            "(see `resnetkit weights list`)"
        )
    state = entry.get_state_dict(progress=progress)
    return LoadedWeights(state, entry.model_meta(), entry.name)


def build_model(loaded: LoadedWeights, arch: Optional[str] = None, norm: str = "batch") -> nn.Module:
    """Build the architecture the weights belong to and load them (strict, with a diagnosis)."""
    arch = arch or loaded.arch
    if arch is None:
        raise ResnetkitError(f"{loaded.source}: cannot tell which architecture these weights belong to; pass --arch")
    stem = loaded.state.get("conv1.weight")
    in_chans = int(loaded.meta.get("in_chans", stem.shape[1] if stem is not None else 3))
    model = get_model(arch, num_classes=loaded.num_classes, in_chans=in_chans, norm_layer=NORM_LAYERS[norm])
    load_weights(model, loaded.state, source=loaded.source)
    return model
