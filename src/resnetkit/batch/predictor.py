"""The Predictor: decode -> preprocess -> forward -> top-k / embeddings, defined once, for `predict`,
`serve`, torchrun shards and Ray actors.

PyTorch weights run on the fastest backend ``optimize()`` measures here for the precision (the choice
is printed and remembered), with the preprocessing fused into the graph: the runner takes the decoded
uint8 crops as they come. An exported model (ONNX, OpenVINO IR, .pt2) runs as it is, fed normalised
float images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..card import ModelCard
from ..deploy.fused import FusedInput, Outputs, normalise, with_tta
from ..deploy.loading import is_exported
from ..errors import InvalidOption
from ..targets import RUN_PRECISIONS
from .decode import Decoder, Item

NOT_FINITE = "the model's output is not finite (NaN or Inf)"


def top_k(logits: torch.Tensor, card: ModelCard, k: int) -> List[List[tuple]]:
    """Per row: the ``k`` (class index, class name, probability) most likely first."""
    probs, indices = logits.float().softmax(1).topk(min(k, logits.shape[1]), dim=1)
    return [
        [(i, card.class_name(i), p) for i, p in zip(row_i, row_p)]
        for row_i, row_p in zip(indices.tolist(), probs.tolist())
    ]


def check_threshold(card: ModelCard, threshold: Optional[float]) -> None:
    """InvalidOption unless ``threshold`` is None, or a probability for a multi-label model."""
    if threshold is None:
        return
    if not card.multilabel:
        raise InvalidOption(
            "threshold applies to multi-label models; this one gives one label an image (use topk)", field="threshold"
        )
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise InvalidOption(f"threshold must be a probability in [0, 1], got {threshold}", field="threshold")


def labels_above(logits: torch.Tensor, card: ModelCard, k: int, threshold: Optional[float] = None) -> List[List[tuple]]:
    """Per row of a multi-label model: the (class index, class name, probability) whose sigmoid
    probability reaches its threshold - ``threshold`` for every class when given, else the per-class
    thresholds the card's training tuned, else 0.5 - most probable first, at most ``k``."""
    probs = torch.sigmoid(logits.float())
    if threshold is not None:
        cuts = torch.full((probs.shape[1],), float(threshold))
    elif card.thresholds is not None and len(card.thresholds) == probs.shape[1]:
        cuts = torch.tensor(card.thresholds)
    else:
        cuts = torch.full((probs.shape[1],), 0.5)
    out = []
    for row in probs:
        hits = [(i, float(row[i])) for i in torch.nonzero(row >= cuts).flatten().tolist()]
        hits.sort(key=lambda hit: -hit[1])
        out.append([(i, card.class_name(i), p) for i, p in hits[:k]])
    return out


def answers(logits: torch.Tensor, card: ModelCard, k: int, threshold: Optional[float] = None) -> List[List[tuple]]:
    """Each row's answer as (index, name, probability) triples: the top ``k`` by softmax, or, for a
    multi-label model (the card says), the labels above the thresholds by sigmoid."""
    if card.multilabel:
        return labels_above(logits, card, k, threshold)
    return top_k(logits, card, k)


@dataclass
class Predictor:
    """A model ready for batch prediction. ``__call__`` takes uint8 (N, H, W, C) crops (what a
    ``Decoder`` makes) and returns (logits, embeddings or None), float32 on the CPU."""

    card: ModelCard
    runner: nn.Module
    fused: bool  # the runner takes uint8 crops (preprocessing in its graph)
    embeddings: bool
    backend: str
    precision: str
    choice: str  # what optimize() chose and why, or how the model runs
    device: torch.device = torch.device("cpu")
    pytorch_model: Optional[nn.Module] = None  # for Grad-CAM; None for an exported model

    def decoder(self, draft: bool = False, policy: str = "resnetkit") -> Decoder:
        return Decoder(self.card.preprocess, self.card.in_chans, draft, policy)

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor):
        x = pixels if self.fused else normalise(pixels, self.card.preprocess, self.card.in_chans)
        out = self.runner(x.to(self.device)).float().cpu()
        if not self.embeddings:
            return out, None
        width = out.shape[1] - self.card.num_classes
        return out[:, width:], out[:, :width]

    def rows(
        self, items: Sequence[Item], topk: int, logits: bool = False, threshold: Optional[float] = None
    ) -> List[Dict[str, Any]]:
        """One row per item, in order: its answer (``answers``: indices, class names, probabilities, in
        the ``top_*`` keys), optionally its embedding and logits, or its error. A row whose output is not
        finite is that input's error."""
        good = [i for i, item in enumerate(items) if item[2] is not None]
        rows: List[Dict[str, Any]] = [{"path": item[1], "error": item[3]} for item in items]
        if not good:
            return rows
        out, features = self(torch.stack([items[i][2] for i in good]))  # type: ignore[misc]
        finite = torch.isfinite(out).all(1)
        if features is not None:
            finite &= torch.isfinite(features).all(1)
        tops = answers(torch.nan_to_num(out), self.card, topk, threshold)
        for j, i in enumerate(good):
            if not bool(finite[j]):
                rows[i]["error"] = f"{items[i][1]}: {NOT_FINITE}"
                continue
            indices, names, probs = zip(*tops[j]) if tops[j] else ((), (), ())  # multi-label: maybe none
            rows[i].update(top_indices=list(indices), top_classes=list(names), top_probs=list(probs))
            if features is not None:
                rows[i]["embedding"] = features[j].tolist()
            if logits:
                rows[i]["logits"] = out[j].tolist()
        return rows


def _exported(model: Any, precision: str, embeddings: bool, tta: str) -> Predictor:
    card = model.card
    if embeddings:
        raise InvalidOption(
            f"embeddings need the PyTorch weights: an exported {card.format} model gives logits only; pass the "
            "weights it was exported from",
            field="embeddings",
        )
    if precision not in ("fp32", card.precision):
        raise InvalidOption(
            f"this is a {card.precision} {card.format} export; precision {precision} needs the weights it was "
            "exported from",
            field="precision",
        )
    from ..deploy.formats import FORMATS

    runtime = FORMATS[card.format].runtime
    how = f"{card.precision} {card.format} file on {runtime}" + (f", tta {tta}" if tta != "none" else "")
    return Predictor(card, with_tta(model, tta), False, False, runtime, card.precision, how)


def check_run_precision(precision: str) -> None:
    """InvalidOption unless PyTorch weights can be run at ``precision`` here (fp16 is Core ML's, of files)."""
    if precision not in RUN_PRECISIONS:
        raise InvalidOption(
            f"precision {precision!r} is not one of {', '.join(RUN_PRECISIONS)} (fp16 runs only from Core ML "
            "packages, on Apple devices)",
            field="precision",
        )


def build_predictor(
    model: Any,
    precision: str = "fp32",
    embeddings: bool = False,
    batch_size: int = 32,
    calibration: Optional[Callable[[], torch.Tensor]] = None,
    device: Optional[torch.device] = None,
    log: Callable[[str], None] = print,
    backend: str = "auto",
    small_job: Optional[int] = None,
    tta: str = "none",
) -> Predictor:
    """A Predictor of ``model`` (an ``InferenceModel``): exported models run as they are; PyTorch
    weights on the fastest backend for ``precision`` at ``batch_size`` (on a CUDA ``device``: PyTorch
    on the GPU), preprocessing fused; ``backend`` names one runtime instead of measuring them.
    ``calibration`` (int8) returns uint8 crops or normalised images. ``small_job`` (the number of
    inputs of a small job) with ``backend="auto"`` runs fp32 and bf16 on PyTorch at once: converting
    the model for another runtime would cost more than it saves. ``tta="flip"`` averages the outputs
    of each image and its mirror image (in the graph each runtime runs)."""
    if is_exported(model):
        return _exported(model, precision, embeddings, tta)
    check_run_precision(precision)
    card = model.card
    net = FusedInput(with_tta(Outputs(model, embeddings), tta), card.preprocess, card.in_chans).eval()
    device = torch.device(device or "cpu")
    small = small_job is not None and backend == "auto" and precision != "int8"
    if device.type != "cpu" or small:
        if precision == "int8":
            raise InvalidOption("int8 runs on the CPU runtimes (OpenVINO, ONNX Runtime); use fp32 or bf16 on a GPU")
        from ..deploy.fold import fold_batchnorm
        from ..deploy.runtimes.pytorch import ChannelsLast

        runner: nn.Module = ChannelsLast(fold_batchnorm(net), bf16=precision == "bf16").to(device).eval()
        how = f"{precision} on PyTorch ({device})"
        if device.type == "cpu":
            n = f"{small_job} input{'s' if small_job != 1 else ''}"
            how = f"{precision} on PyTorch: a small job ({n}) starts at once; other runtimes pay their conversion back over more"
        return Predictor(card, runner, True, embeddings, "pytorch", precision, how, device, model)
    from ..deploy.optimize import optimize

    crops = None
    if precision == "int8":
        if calibration is None:
            raise InvalidOption("int8 needs calibration images", field="calibration")

        def crops() -> torch.Tensor:  # called only if the int8 model is not in the cache already
            images = calibration()
            return (
                images if images.dtype == torch.uint8 else FusedInput.pixels_of(images, card.preprocess, card.in_chans)
            )

    runner = optimize(
        net, precision, calibration=crops, backend=backend, input_size=card.input_size, batch_size=batch_size,
        log=log, calibration_id=getattr(calibration, "identity", None),
    )  # fmt: skip
    choice = getattr(runner, "choice", None)
    backend = choice.backend if choice is not None else "pytorch"
    return Predictor(card, runner, True, embeddings, backend, precision, str(choice or backend), device, model)


def weights_identity(model: Any) -> Optional[str]:
    """A hash that identifies the weights (recorded in a results table, checked on resume): the one a
    file recorded, else of the model's tensors (PyTorch) or of the file (an export)."""
    card = model.card
    if card.weights_sha256:
        return card.weights_sha256
    from ..deploy.loading import is_exported

    if not is_exported(model):
        from ..weights.io import tensor_digest

        return tensor_digest(model.state_dict())
    path = Path(model.path)
    files = [path] if path.is_file() else sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()
