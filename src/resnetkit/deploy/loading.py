"""Load anything `predict` accepts: weights (run directory, file, URL, catalog name, Hugging Face
folder) as a PyTorch model, or an exported artifact (ONNX, OpenVINO IR, .pt2, TorchScript) on its
runtime; with its evaluation preprocessing and class names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:
    from ..data.transforms import Preprocess
    from ..models import ResNetBase
    from ..weights.resolve import LoadedWeights


def load_any(
    source: str, arch: Optional[str] = None, progress: bool = True, hf_config: Optional[str] = None
) -> Tuple[ResNetBase, LoadedWeights, Preprocess, Optional[List[str]]]:
    """(model in eval mode, where its weights came from, preprocessing, class names), all read
    from the model's ``pretrained_cfg``."""
    from ..data.transforms import Preprocess
    from ..weights.factory import model_from_weights
    from ..weights.resolve import LoadedWeights, resolve
    from .runtimes import exported_format, load_exported

    if exported_format(Path(source).expanduser()):
        exported = load_exported(Path(source).expanduser()).eval()
        cfg = exported.pretrained_cfg
        loaded = LoadedWeights({}, {"arch": exported.arch}, str(exported.path))
        return exported, loaded, Preprocess.from_dict(cfg["preprocess"]), cfg.get("classes")  # type: ignore[return-value]
    loaded = resolve(source, arch=arch, progress=progress, config=hf_config)
    model = model_from_weights(loaded, arch=arch).eval()
    cfg = model.pretrained_cfg
    return model, loaded, Preprocess.from_dict(cfg["preprocess"]), cfg.get("classes")
