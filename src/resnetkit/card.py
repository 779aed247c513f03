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
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from .errors import BadFile, InvalidOption

if TYPE_CHECKING:
    import torch

CARD_VERSION = 2  # 1: resnetkit 0.2's untyped metadata (flat keys), still read

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
PRECISIONS = ("fp32", "bf16", "int8")
FORMATS = ("pytorch", "safetensors", "onnx", "openvino", "pt2", "torchscript")
NORMS = ("batch", "group", "frozen")


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

    def __post_init__(self) -> None:
        for name in ("resize_size", "crop_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InvalidOption(f"preprocess.{name} must be an integer >= 1, got {value!r}", field=name)
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

    def to_dict(self) -> Dict[str, Any]:
        return {
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

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
        )

    @classmethod
    def for_input_size(cls, size: int) -> Preprocess:
        """ImageNet's convention at ``size`` px: resize to size / 0.875 (256 for 224), crop, ImageNet statistics."""
        return cls(resize_size=size * 8 // 7, crop_size=size)

    def transform(self, in_chans: int = 3):
        """PIL image (or uint8 tensor) -> normalized float tensor (C, crop, crop), in torchvision's
        ``weights.transforms()`` order, so published accuracies reproduce bit for bit. A 1-channel
        model gets its images converted to grayscale first."""
        import torch
        from torchvision.transforms import v2 as T

        modes = {
            "bilinear": T.InterpolationMode.BILINEAR,
            "bicubic": T.InterpolationMode.BICUBIC,
            "nearest": T.InterpolationMode.NEAREST,
        }
        if in_chans not in (1, 3):
            raise InvalidOption(
                f"the model takes {in_chans}-channel images; image files decode to RGB or grayscale, so feed it "
                "tensors you prepared yourself",
                field="in_chans",
            )
        mean, std = list(self.mean), list(self.std)
        if len(mean) != in_chans:  # RGB statistics for a grayscale model (or the reverse): their average
            mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
        steps = [T.Grayscale(1)] if in_chans == 1 else []
        steps += [
            T.Resize(self.resize_size, interpolation=modes[self.interpolation], antialias=True),
            T.CenterCrop(self.crop_size),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
        return T.Compose(steps)


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
    version: int = CARD_VERSION

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
        choices = (("format", FORMATS), ("precision", PRECISIONS), ("norm", (None, *NORMS)))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise InvalidOption(f"card.{name} {getattr(self, name)!r} is not one of {allowed}", field=name)
        if not isinstance(self.model_options, Mapping):
            raise InvalidOption(
                f"card.model_options must be a mapping, got {self.model_options!r}", field="model_options"
            )
        object.__setattr__(self, "model_options", dict(self.model_options))

    # ---- derived -----------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        return self.preprocess.crop_size

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
            "card_version": self.version,
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
        """A string map as ``to_metadata()`` writes it, its JSON values decoded."""
        out: Dict[str, Any] = {}
        for k, v in raw.items():
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
        for key in ("arch", "num_classes", "in_chans", "norm", "precision", "source", "tag", "weights_sha256", "data"):
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
            values["classes"] = classes if len(classes) == num else None
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
