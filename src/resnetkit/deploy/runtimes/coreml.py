"""Core ML: the .mlpackage (an ML program, fp32 or fp16 compute) written by coremltools from the
traced network, with the model card and the class labels in its user-defined metadata.

Core ML runs only on Apple's systems. Elsewhere a package is verified as far as that is possible
without running it: the spec loads back, it is an ML program of the precision asked for, its input
and output are the ones written (name, shape range, type) and the card reads back equal. The export
says plainly that predictions were not checked. On macOS, coremltools runs the package
(``MLModel.predict``), and ``load`` returns a runner like every other format's.

The input is a float tensor ``images`` (N, C, H, W), normalised as the card says, unless the card's
std is the same for every channel: then normalisation is exact as Core ML image preprocessing
(``pixel * scale + bias`` with one scale) and the input is an image ``image`` (RGB, H x W) - the app
resizes and crops as the card records, Core ML does the rest. ImageNet's std differs per channel, so
those models take the tensor."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile, DamagedModel, NotRunnableHere
from ...fileio import disk_full_error, filled_the_disk, make_dir
from ...quiet import no_warnings, third_party_output
from ..common import example_input, last_line, need
from ..exported import ExportedModel

EXTRA = "coreml"
CARD_KEY = "resnetkit_card"
MAX_BATCH = 64  # the batch axis is a range 1..MAX_BATCH


def _ct():
    need(("coremltools",), EXTRA, "Core ML export")
    with third_party_output(), no_warnings():  # its import warns about untested versions
        import coremltools as ct

    return ct


def runs_here() -> bool:
    return platform.system() == "Darwin"


def image_input(card: ModelCard) -> bool:
    """Whether the card's normalisation is exact as Core ML image preprocessing (one scale)."""
    std = card.preprocess.std
    return card.in_chans == 3 and len(set(std)) == 1


def _inputs(ct, card: ModelCard, size: int) -> List[Any]:
    batch = ct.RangeDim(1, MAX_BATCH, 1)
    if image_input(card):
        pre = card.preprocess
        scale = 1.0 / (255.0 * pre.std[0])
        bias = [-m / s for m, s in zip(pre.mean, pre.std)]
        return [ct.ImageType(name="image", shape=(batch, 3, size, size), scale=scale, bias=bias)]
    return [ct.TensorType(name="images", shape=ct.Shape(shape=(batch, card.in_chans, size, size)))]


def write(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    """The .mlpackage of ``model`` at the card's precision (fp32, or fp16 compute)."""
    if path.exists() and not (path / "Manifest.json").is_file():
        raise BadFile(f"out {path} exists and is not a Core ML package; give a new name", field="out")
    ct = _ct()
    precision = ct.precision.FLOAT16 if card.precision == "fp16" else ct.precision.FLOAT32
    with torch.no_grad(), no_warnings():
        traced = torch.jit.trace(model, example_input(model, input_size, 1))
    with third_party_output(), no_warnings():
        ml = ct.convert(
            traced,
            inputs=_inputs(ct, card, input_size),
            outputs=[ct.TensorType(name="logits")],
            convert_to="mlprogram",
            compute_precision=precision,
            minimum_deployment_target=ct.target.iOS16,
        )
    ml.short_description = f"{card.arch or 'a ResNet'}: {card.num_classes} classes (resnetkit)"
    ml.user_defined_metadata[CARD_KEY] = json.dumps(card.to_dict(), sort_keys=True)
    if card.classes:
        ml.user_defined_metadata["classes"] = json.dumps(list(card.classes))
    # The package is a folder: written beside its final name, then moved there (no half-written package;
    # an earlier package of the same name is replaced only once the new one is complete).
    make_dir(path.parent)
    existed = path.exists()
    with tempfile.TemporaryDirectory(prefix=".resnetkit-", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        try:
            ml.save(str(staged))
        except Exception as exc:
            if filled_the_disk(exc, path.parent):
                raise disk_full_error(path, "Core ML package", existed) from None
            raise
        if existed:
            shutil.rmtree(path)
        staged.rename(path)


def read_spec(path: Path):
    """The package's spec; BadFile when it is not a readable Core ML package."""
    ct = _ct()
    if not (path / "Manifest.json").is_file():
        raise BadFile(f"{path}: not a Core ML package (no Manifest.json in it); export it again")
    try:
        with third_party_output():
            return ct.utils.load_spec(str(path))
    except Exception as exc:  # coremltools raises protobuf's and its own errors
        raise DamagedModel(f"{path}: the Core ML package does not read ({last_line(exc)}); export it again") from None


def read_card(spec, path: Path) -> ModelCard:
    meta: Dict[str, str] = dict(spec.description.metadata.userDefined)
    if CARD_KEY not in meta:
        raise BadFile(f"{path}: a Core ML package without resnetkit's model card; export it with resnetkit")
    try:
        fields = json.loads(meta[CARD_KEY])
    except ValueError:
        raise DamagedModel(f"{path}: its model card is not JSON; export it again") from None
    return ModelCard.from_metadata(fields, where=str(path)).but(format="coreml", source=str(path))


def check(path: Path, card: ModelCard, spec=None) -> str:
    """What can be verified without Core ML: the spec (``spec``: already read), its type, input,
    output and the card. Raises DamagedModel naming what differs; returns what was checked."""
    spec = spec if spec is not None else read_spec(path)
    if spec.WhichOneof("Type") != "mlProgram":
        raise DamagedModel(f"{path}: not an ML program ({spec.WhichOneof('Type')}); export it again")
    written = read_card(spec, path)
    if written.but(source=card.source).to_dict() != card.to_dict():
        raise DamagedModel(f"{path}: its model card does not read back as written; export it again")
    inputs, outputs = list(spec.description.input), list(spec.description.output)
    want = "image" if image_input(card) else "images"
    if [i.name for i in inputs] != [want] or [o.name for o in outputs] != ["logits"]:
        raise DamagedModel(f"{path}: its inputs/outputs are not {want} -> logits; export it again")
    size = card.input_size
    kind = inputs[0].type.WhichOneof("Type")
    if kind == "multiArrayType":
        ranges = [(r.lowerBound, r.upperBound) for r in inputs[0].type.multiArrayType.shapeRange.sizeRanges]
        expected = [(1, MAX_BATCH), (card.in_chans, card.in_chans), (size, size), (size, size)]
        if ranges != expected:
            raise DamagedModel(f"{path}: its input takes {ranges}, not {expected}; export it again")
    elif (inputs[0].type.imageType.width, inputs[0].type.imageType.height) != (size, size):
        raise DamagedModel(f"{path}: its image input is not {size}x{size}; export it again")
    return (
        f"spec, inputs ({want}), output (logits) and the card checked; predictions NOT checked: Core ML runs "
        "on Apple devices only" + (" (this is one: run resnetkit predict/eval on it)" if runs_here() else "")
    )


def describe(path: Path) -> ModelCard:
    """The card of a package, after ``check`` of the package against it (what `weights verify` does
    where Core ML cannot run)."""
    spec = read_spec(path)
    card = read_card(spec, path)
    check(path, card.but(source=None), spec)
    return card


class MLModelRunner(nn.Module):
    """A Core ML package run by coremltools on macOS."""

    def __init__(self, mlmodel, card: ModelCard) -> None:
        super().__init__()
        self.runtime = mlmodel
        self.card = card

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if image_input(self.card):
            raise NotRunnableHere("run a Core ML package with image input from an app (it takes PIL images)")
        out = self.runtime.predict({"images": x.detach().cpu().numpy()})
        return torch.from_numpy(out["logits"])


def load(path: Path) -> ExportedModel:
    """A .mlpackage: on macOS its runner; elsewhere its spec and card are checked, then a one-line
    NotRunnableHere says that Core ML runs on Apple devices only."""
    spec = read_spec(path)
    card = read_card(spec, path)
    if not runs_here():
        raise NotRunnableHere(
            f"{path} is a Core ML package ({card.arch}, {card.precision}): Core ML runs on Apple devices only "
            "(macOS, iOS); run it there, or export --format onnx or executorch to run it here"
        )
    ct = _ct()
    run = MLModelRunner(ct.models.MLModel(str(path)), card)
    return ExportedModel(run, card, path, runtime=run.runtime)
