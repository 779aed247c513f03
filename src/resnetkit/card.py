"""The model card: the one typed description of a model, written into every file resnetkit makes and
read back from every file it loads.

A ``ModelCard`` says what a model is (architecture, classes, input channels, build options), how to
feed it (``Preprocess``), where its weights came from, and how it is stored (format, precision, a
hash of the weights). The catalog, the trainer, export and exported models all make one; a model's
timm-style ``pretrained_cfg`` is computed from it. It is serialised one way, ``to_dict()``'s flat
keys (as JSON in OpenVINO rt_info and the extra file of a .pt2 or TorchScript archive; as a string
map, ``to_metadata()``, in safetensors metadata and ONNX metadata_props), and parsed strictly
(``from_metadata()``): a field that does not parse is refused by name, never replaced by a default,
because a model fed the wrong preprocessing answers with confidence and is wrong. The keys are those
resnetkit 0.2 wrote, so its files still load.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from .errors import BadFile, InvalidOption
from .targets import CARD_FORMATS, PRECISIONS

if TYPE_CHECKING:
    import torch

CARD_VERSION = 3  # the newest this resnetkit reads; 1: resnetkit 0.2's untyped metadata (flat keys)
# What a card states: 2 for a single-label classifier (every resnetkit since 0.3 reads it), 3 for a
# multi-label one - so a resnetkit that does not know multi-label refuses the file ("upgrade") instead
# of answering with a softmax over labels that are not exclusive.
WRITTEN_VERSION = {"multiclass": 2, "multilabel": 3}
# multiclass: one label per image (softmax); multilabel: any number (a sigmoid per class, a threshold each).
TASKS = tuple(WRITTEN_VERSION)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# How the crop is cut (timm's pretrained_cfg crop_mode): center - resize the short side, crop the middle;
# squash - resize both sides (the aspect ratio is not kept), crop the middle; border - resize the long
# side, pad the rest with the mean colour, crop the middle (nothing of the image is lost at crop_pct 1).
CROP_MODES = ("center", "squash", "border")
# Sizes read from files are bounded: a card asking for a 20,000 px crop would allocate gigabytes per
# image. The largest published ResNets are evaluated at 480 px (BiT); 2048 leaves room for high-resolution
# fine-tuning.
MAX_CROP_SIZE = 2048
MAX_RESIZE_SIZE = 4096
FORMATS = CARD_FORMATS  # the card's "format": pytorch, or a file format of targets.py
NORMS = ("batch", "group", "frozen")
# Fields to_metadata() stores as they are (every other one as JSON).
TEXT_FIELDS = ("arch", "source", "tag", "norm", "format", "precision", "weights_sha256", "data", "task")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize the short side, center crop, scale to [0, 1], normalize.
    Every field is checked on construction (InvalidOption naming ``preprocess.<field>``)."""

    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        for name, limit in (("resize_size", MAX_RESIZE_SIZE), ("crop_size", MAX_CROP_SIZE)):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= limit:
                raise InvalidOption(f"preprocess.{name} must be an integer in [1, {limit}], got {value!r}", field=name)
        if self.crop_size > self.resize_size:
            raise InvalidOption(
                f"preprocess.crop_size {self.crop_size} is larger than resize_size {self.resize_size}: the crop would "
                "be padded with zeros; give a resize_size >= crop_size",
                field="crop_size",
            )
        if self.crop_mode not in CROP_MODES:
            raise InvalidOption(
                f"preprocess.crop_mode {self.crop_mode!r} is not one of {', '.join(CROP_MODES)}", field="crop_mode"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise InvalidOption(
                f"preprocess.interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}",
                field="interpolation",
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
                raise InvalidOption(f"preprocess.{name} must be a list of numbers, got {value!r}", field=name)
            if not all(_number(v) for v in value):
                raise InvalidOption(f"preprocess.{name} must hold finite numbers only, got {list(value)!r}", field=name)
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if len(self.mean) != len(self.std):
            raise InvalidOption(
                f"preprocess.mean has {len(self.mean)} values but preprocess.std {len(self.std)}; give one per channel",
                field="std",
            )
        if not all(v > 0 for v in self.std):
            raise InvalidOption(f"preprocess.std must be > 0 (it divides), got {list(self.std)}", field="std")

    @property
    def crop_pct(self) -> float:
        return self.crop_size / self.resize_size

    def channel_stats(self, in_chans: int) -> Tuple[List[float], List[float]]:
        """The mean and std for each of ``in_chans`` channels: one value each, or a single value for
        every channel, or RGB statistics averaged for a 1-channel model (RGB weights adapted to gray).
        Anything else cannot be right, and is refused rather than guessed."""
        mean, std = list(self.mean), list(self.std)
        if len(mean) == in_chans:
            return mean, std
        if len(mean) == 1 or (len(mean) == 3 and in_chans == 1):
            return [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
        raise InvalidOption(
            f"preprocess.mean and std have {len(mean)} values for a {in_chans}-channel model; give one per channel "
            "(or one for all)",
            field="mean",
        )

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.crop_mode != "center":  # files without it (every file before 0.4) mean center
            out["crop_mode"] = self.crop_mode
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        """Strict: every field must be there and parse (unknown keys are ignored)."""
        if not isinstance(d, Mapping):
            raise InvalidOption(f"preprocess must be a mapping of its fields, got {d!r}", field="preprocess")
        missing = [k for k in ("resize_size", "crop_size", "mean", "std") if k not in d]
        if missing:
            raise InvalidOption(f"preprocess lacks {', '.join(missing)}", field=missing[0])
        return cls(
            resize_size=d["resize_size"],
            crop_size=d["crop_size"],
            interpolation=d.get("interpolation", "bilinear"),
            mean=d["mean"],
            std=d["std"],
            crop_mode=d.get("crop_mode", "center"),
        )

    @classmethod
    def for_input_size(cls, size: int) -> Preprocess:
        """ImageNet's convention at ``size`` px: resize to size / 0.875 (256 for 224), crop, ImageNet statistics."""
        return cls(resize_size=size * 8 // 7, crop_size=size)

    def geometry(self, image):
        """A PIL image resized and cropped to ``crop_size`` as ``crop_mode`` says (timm's eval
        transforms; torchvision's ``Resize`` + ``CenterCrop`` for center), still a PIL image.

        Hand-written over PIL, not torchvision's functions: torchvision resizes a PIL image with PIL's
        own ``Image.resize`` and crops with ``Image.crop``, so the pixels are the same (tests compare
        with torchvision at many sizes) - but importing torchvision costs 1.8 s (it loads torch's
        compiler stack through torchvision.ops), twice a one-image job's prediction."""
        resample = _PIL_RESAMPLE[self.interpolation]
        size = self.crop_size
        if self.crop_mode == "squash":
            return _center_crop(_resize(image, self.resize_size, self.resize_size, resample), size, 0)
        if self.crop_mode == "border":
            width, height = image.size
            ratio = max(width, height) / self.resize_size
            image = _resize(image, round(width / ratio), round(height / ratio), resample)
            return _center_crop(image, size, self.fill())
        width, height = image.size  # torchvision's Resize(int): the short side to resize_size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        return _center_crop(_resize(image, new_w, new_h, resample), size, 0)

    def fill(self) -> Tuple[int, ...]:
        """The colour ``border`` pads with: the mean, in pixel values (timm's choice)."""
        return tuple(round(255 * v) for v in self.mean)

    def transform(self, in_chans: int = 3):
        """PIL image (or uint8 tensor) -> normalized float tensor (C, crop, crop), in torchvision's
        ``weights.transforms()`` order, so published accuracies reproduce bit for bit. A 1-channel
        model gets its images converted to grayscale first."""
        import torch
        from torchvision.transforms import v2 as T

        if in_chans not in (1, 3):
            raise InvalidOption(
                f"the model takes {in_chans}-channel images; image files decode to RGB or grayscale, so feed it "
                "tensors you prepared yourself",
                field="in_chans",
            )
        mean, std = self.channel_stats(in_chans)
        steps = [T.Grayscale(1)] if in_chans == 1 else []
        steps += [
            self.geometry,
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
        return T.Compose(steps)


# torchvision's interpolation modes -> the PIL filters it resizes PIL images with (Image.Resampling).
_PIL_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}


def _resize(image, width: int, height: int, resample: int):
    """A PIL image at (width, height); the same image when it is that size already (as torchvision)."""
    return image if image.size == (width, height) else image.resize((width, height), resample=resample)


def _center_crop(image, size: int, fill):
    """The middle ``size`` x ``size`` of a PIL image, padded with ``fill`` first where it is smaller
    (torchvision's CenterCrop: the odd pixel of padding right and below, the offset rounded)."""
    width, height = image.size
    if size > width or size > height:
        from PIL import Image

        pad_w, pad_h = max(size - width, 0), max(size - height, 0)
        colour = (fill[0] if image.mode == "L" else fill) if isinstance(fill, tuple) else fill
        padded = Image.new(image.mode, (width + pad_w, height + pad_h), colour)
        padded.paste(image, (pad_w // 2, pad_h // 2))
        image, (width, height) = padded, padded.size
        if width == size and height == size:
            return image
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class ModelCard:
    """What a model is, how to feed it, where it came from and how it is stored."""

    arch: Optional[str]
    num_classes: int
    classes: Optional[Tuple[str, ...]] = None
    in_chans: int = 3
    preprocess: Preprocess = field(default_factory=Preprocess)
    source: Optional[str] = None  # catalog name, file, URL, or "resnetkit train"
    tag: Optional[str] = None  # the catalog name of published weights
    norm: Optional[str] = None  # batch | group | frozen: the norm layer the weights need
    model_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"stride_in_1x1": True}
    format: str = "pytorch"
    precision: str = "fp32"
    weights_sha256: Optional[str] = None  # of the stored weights, checked when they are read back
    data: Optional[str] = None  # what the weights were trained on
    task: str = "multiclass"
    thresholds: Optional[Tuple[float, ...]] = None  # multilabel: per-class thresholds tuned on validation data
    version: int = 2

    def __post_init__(self) -> None:
        if self.arch is not None and not isinstance(self.arch, str):
            raise InvalidOption(f"card.arch must be an architecture name, got {self.arch!r}", field="arch")
        if not _is_int(self.num_classes) or self.num_classes < 0:
            raise InvalidOption(
                f"card.num_classes must be an integer >= 0, got {self.num_classes!r}", field="num_classes"
            )
        if not _is_int(self.in_chans) or self.in_chans < 1:
            raise InvalidOption(f"card.in_chans must be an integer >= 1, got {self.in_chans!r}", field="in_chans")
        if self.classes is not None:
            if isinstance(self.classes, (str, bytes)) or not isinstance(self.classes, Sequence):
                raise InvalidOption(f"card.classes must be a list of names, got {self.classes!r}", field="classes")
            names = tuple(str(c) for c in self.classes)
            if len(names) != self.num_classes:
                raise InvalidOption(
                    f"card.classes has {len(names)} names for {self.num_classes} outputs", field="classes"
                )
            object.__setattr__(self, "classes", names)
        if not isinstance(self.preprocess, Preprocess):
            raise InvalidOption(f"card.preprocess must be a Preprocess, got {self.preprocess!r}", field="preprocess")
        self.preprocess.channel_stats(self.in_chans)  # mean/std that fit the channels, or refused
        if not _is_int(self.version) or self.version < 1:
            raise InvalidOption(f"card_version must be an integer >= 1, got {self.version!r}", field="card_version")
        if self.version > CARD_VERSION:
            raise InvalidOption(
                f"card_version {self.version} was written by a newer resnetkit (this one reads up to {CARD_VERSION}); "
                "upgrade resnetkit (pip install -U resnetkit)",
                field="card_version",
            )
        choices = (("format", FORMATS), ("precision", PRECISIONS), ("norm", (None, *NORMS)))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise InvalidOption(f"card.{name} {getattr(self, name)!r} is not one of {allowed}", field=name)
        if not isinstance(self.model_options, Mapping):
            raise InvalidOption(
                f"card.model_options must be a mapping, got {self.model_options!r}", field="model_options"
            )
        object.__setattr__(self, "model_options", dict(self.model_options))
        self._check_task()

    def _check_task(self) -> None:
        if self.task not in TASKS:
            raise InvalidOption(f"card.task {self.task!r} is not one of {', '.join(TASKS)}", field="task")
        if self.thresholds is None:
            return
        values = self.thresholds
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != self.num_classes:
            raise InvalidOption(
                f"card.thresholds must be {self.num_classes} numbers (one per class), got {values!r}",
                field="thresholds",
            )
        if not all(_number(v) and 0.0 <= float(v) <= 1.0 for v in values):
            raise InvalidOption(
                f"card.thresholds must be probabilities in [0, 1], got {list(values)!r}", field="thresholds"
            )
        if self.task != "multilabel":
            raise InvalidOption("card.thresholds belong to a multilabel model", field="thresholds")
        object.__setattr__(self, "thresholds", tuple(float(v) for v in values))

    # ---- derived -----------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        return self.preprocess.crop_size

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def class_name(self, index: int) -> str:
        return self.classes[index] if self.classes and 0 <= index < len(self.classes) else str(index)

    def but(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def pretrained_cfg(self, first_conv: str = "conv1", pool_size: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
        """timm's ``pretrained_cfg`` keys, computed (plus resnetkit's own ``preprocess`` record)."""
        pre = self.preprocess
        size = pre.crop_size
        return {
            "architecture": self.arch,
            "tag": self.tag,
            "source": self.source,
            "num_classes": self.num_classes,
            "classes": list(self.classes) if self.classes else None,
            "in_chans": self.in_chans,
            "input_size": (self.in_chans, size, size),
            "pool_size": pool_size,
            "crop_pct": pre.crop_pct,
            "interpolation": pre.interpolation,
            "mean": pre.mean,
            "std": pre.std,
            "first_conv": first_conv,
            "classifier": "fc",
            "preprocess": pre.to_dict(),
            "format": self.format,
            "precision": self.precision,
        }

    # ---- one serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """The card as flat JSON-able keys (the keys resnetkit 0.2 wrote, plus ``card_version``); what is
        unknown (None) is left out."""
        values = {
            "card_version": max(self.version, WRITTEN_VERSION[self.task]),
            "arch": self.arch,
            "num_classes": self.num_classes,
            "classes": list(self.classes) if self.classes is not None else None,
            "in_chans": self.in_chans,
            "preprocess": self.preprocess.to_dict(),
            "source": self.source,
            "tag": self.tag,
            "norm": self.norm,
            "model_options": dict(self.model_options),
            "format": self.format,
            "precision": self.precision,
            "weights_sha256": self.weights_sha256,
            "data": self.data,
            "task": self.task if self.multilabel else None,  # absent: multiclass (every file before 0.5)
            "thresholds": list(self.thresholds) if self.thresholds is not None else None,
        }
        return {k: v for k, v in values.items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_metadata(self) -> Dict[str, str]:
        """The card as a string map (safetensors metadata, ONNX metadata_props): strings as they are,
        everything else as JSON."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.to_dict().items()}

    @staticmethod
    def decode_metadata(raw: Mapping[str, str]) -> Dict[str, Any]:
        """A string map as ``to_metadata()`` writes it, its JSON values decoded (the card's text
        fields stay text: a source named "42" is not the number 42)."""
        out: Dict[str, Any] = {}
        for k, v in raw.items():
            if k in TEXT_FIELDS and isinstance(v, str):
                out[k] = v
                continue
            try:
                out[k] = json.loads(v) if isinstance(v, str) else v
            except ValueError:
                out[k] = v
        return out

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, Any], where: str = "the file", defaults: Optional[ModelCard] = None
    ) -> ModelCard:
        """The card in a file's (decoded) metadata; BadFile naming ``where`` and the field when a
        field does not parse. ``defaults`` fills what the file does not say (e.g. the class count, read
        from the weights). Reads resnetkit 0.2's files too (same keys, no ``card_version``)."""
        try:
            return cls._parse(meta, defaults or cls(arch=None, num_classes=meta.get("num_classes") or 0))
        except (InvalidOption, ValueError, TypeError, KeyError) as exc:
            raise BadFile(
                f"{where}: its model metadata does not parse ({exc}); the model would be fed the wrong input, so it "
                "was refused: fix the metadata or export the model again"
            ) from None

    @classmethod
    def _parse(cls, meta: Mapping[str, Any], base: ModelCard) -> ModelCard:
        values: Dict[str, Any] = {}
        for key in (
            "arch", "num_classes", "in_chans", "norm", "precision", "source", "tag", "weights_sha256", "data", "task",
            "thresholds",
        ):  # fmt: skip
            if meta.get(key) is not None:
                values[key] = meta[key]
        if meta.get("weights") and "tag" not in values:  # 0.2 called the catalog name "weights"
            values["tag"] = meta["weights"]
        if meta.get("format") in FORMATS:  # safetensors' own "format": "pt" is not ours
            values["format"] = meta["format"]
        if "preprocess" in meta:
            values["preprocess"] = Preprocess.from_dict(meta["preprocess"])
        elif meta.get("input_size") is not None:  # 0.2's exports without a preprocess record
            values["preprocess"] = Preprocess.for_input_size(int(meta["input_size"]))
        if meta.get("model_options") is not None:
            values["model_options"] = meta["model_options"]
        num = values.get("num_classes", base.num_classes)
        classes = meta.get("classes")
        if classes is not None:
            if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
                raise InvalidOption(f"classes must be a list of names, got {classes!r}", field="classes")
            if len(classes) != num:  # a name too many or too few: which output is which is unknown
                raise InvalidOption(f"classes has {len(classes)} names for {num} outputs", field="classes")
            values["classes"] = classes
        elif num != base.num_classes:
            values["classes"] = None
        if "card_version" in meta:
            values["version"] = meta["card_version"]
        return replace(base, **values)


@runtime_checkable
class InferenceModel(Protocol):
    """What predict, eval, bench and serve run: a callable from a float (N, C, H, W) batch to logits,
    with a card. ``ResNetBase`` models and exported models (ONNX, OpenVINO, .pt2) both are one."""

    @property
    def card(self) -> ModelCard: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
