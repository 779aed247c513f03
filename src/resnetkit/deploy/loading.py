"""``load_inference_model``: anything ``--weights`` accepts, as a model ready to run, with its card.

Weights (a run directory, a file, a URL, a catalog name, a Hugging Face folder) become the PyTorch
model they belong to; an exported artifact (ONNX, OpenVINO IR, .pt2, TorchScript) runs on its own
runtime. Both are ``InferenceModel``s: call them on a float batch, read ``model.card``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

from ..card import InferenceModel
from .formats import detect


def is_exported(model: object) -> bool:
    """Whether ``model`` runs on an exported file's runtime (no gradients, no PyTorch modules)."""
    card = getattr(model, "card", None)
    return card is not None and card.format not in ("pytorch", "safetensors")


def load_inference_model(
    source: str, arch: Optional[str] = None, progress: bool = True, hf_config: Optional[str] = None
) -> InferenceModel:
    """The model ``source`` names, in eval mode, its card saying what it is and how to feed it."""
    from ..weights.factory import model_from_weights
    from ..weights.resolve import resolve

    path = Path(str(source)).expanduser()
    fmt = detect(path)
    if fmt is not None and fmt.load is not None:
        return cast(InferenceModel, fmt.load(path).eval())
    loaded = resolve(source, arch=arch, progress=progress, config=hf_config)
    return cast(InferenceModel, model_from_weights(loaded, arch=arch).eval())
