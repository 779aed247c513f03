"""The catalog of published weights (data files), with enum-style access like torchvision's."""

from __future__ import annotations

import difflib
import enum
import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Type

from ..card import ModelCard, Preprocess
from ..errors import InvalidOption
from .classes import imagenet_classes
from .download import cache_dir, download

if TYPE_CHECKING:  # the catalog is data: `resnetkit weights list` and `models` read it without torch
    import torch


@dataclass(frozen=True)
class WeightsEntry:
    """One published set of weights: where it lives, how it was evaluated, how to preprocess for it.

    torchvision's weights (and a few of timm's files) are downloaded from their URL and checked
    against a sha256 prefix; timm's tags live in Hugging Face Hub repositories (``hub_id``) and come
    through ``huggingface_hub`` (its cache, its integrity checks, its offline mode)."""

    name: str
    arch: str
    tag: str
    num_classes: int
    num_params: int
    acc1: Optional[float]  # ImageNet-1k top-1 as published (None: not an ImageNet-1k classifier)
    acc5: Optional[float]
    preprocess: dict
    url: Optional[str] = None
    file_name: Optional[str] = None
    sha256_prefix: Optional[str] = None
    gflops: Optional[float] = None
    file_size_mb: Optional[float] = None
    min_size: tuple = (1, 1)
    default: bool = False
    legacy_files: tuple = field(default_factory=tuple)
    recipe: Optional[str] = None
    source: str = "torchvision"
    hub_id: Optional[str] = None  # timm/NAME.TAG on the Hugging Face Hub
    license: Optional[str] = None
    in_chans: int = 3
    test_input_size: Optional[int] = None  # timm's test-time size (evaluated there), when it differs
    test_crop_pct: Optional[float] = None
    eval_size: Optional[int] = None  # the size acc1/acc5 were measured at
    paper: Optional[str] = None
    origin_url: Optional[str] = None

    @property
    def meta(self) -> dict:
        """The facts about these weights, torchvision-style (plus our preprocessing record)."""
        return {
            "categories": imagenet_classes() if self.num_classes == 1000 else None,
            "num_params": self.num_params,
            "min_size": self.min_size,
            "metrics": {"ImageNet-1K": {"acc@1": self.acc1, "acc@5": self.acc5}},
            "gflops": self.gflops,
            "file_size_mb": self.file_size_mb,
            "recipe": self.recipe,
            "preprocess": dict(self.preprocess),
            "hub_id": self.hub_id,
            "license": self.license,
            "test_input_size": self.test_input_size,
            "test_crop_pct": self.test_crop_pct,
            "eval_size": self.eval_size,
            "paper": self.paper,
        }

    def preprocessing(self) -> Preprocess:
        return Preprocess.from_dict(self.preprocess)

    def transforms(self):
        """The evaluation preprocessing these weights were measured with (PIL image or tensor in)."""
        return self.preprocessing().transform()

    @property
    def on_hub(self) -> bool:
        """Whether the weights come from a Hugging Face Hub repository (else from ``url``)."""
        return self.url is None

    def download_url(self) -> str:
        """``url``, or the same file name under ``$RESNETKIT_WEIGHTS_MIRROR`` when that is set
        (an internal mirror of the published files; hashes are checked all the same)."""
        if self.url is None:
            raise InvalidOption(f"{self.name} lives on the Hugging Face Hub ({self.hub_id}), not at a URL")
        mirror = os.environ.get("RESNETKIT_WEIGHTS_MIRROR", "").strip()
        return f"{mirror.rstrip('/')}/{self.file_name}" if mirror else self.url

    def cache_path(self) -> Path:
        return cache_dir() / str(self.file_name)

    def cached_path(self) -> Optional[Path]:
        """The file in the cache under torchvision's current or first-release name, if present
        (Hub weights are in the Hugging Face cache: ``huggingface-cli scan-cache``)."""
        if self.file_name is None:
            return None
        for name in (self.file_name, *(f["file_name"] for f in self.legacy_files)):
            p = cache_dir() / name
            if p.is_file():
                return p
        return None

    def fetch(self, progress: bool = True) -> Path:
        """Path of the verified file, downloading it if the cache does not have it."""
        if self.on_hub:
            from .hub import fetch_weights_file

            return fetch_weights_file(f"hf-hub:{self.hub_id}")
        found = self.cached_path()
        if found is not None:
            return found
        from .io import validate_weights_file

        return download(
            self.download_url(),
            self.cache_path(),
            str(self.sha256_prefix),
            progress=progress,
            validate=validate_weights_file,
        )

    def get_state_dict(self, progress: bool = True) -> Dict[str, torch.Tensor]:
        if self.on_hub:
            return self.load(progress)[0]
        from .io import read_cached

        return read_cached(lambda: self.fetch(progress=progress))[0]

    def load(self, progress: bool = True) -> Tuple[Dict[str, torch.Tensor], ModelCard]:
        """(state_dict, card): downloaded and verified (URL), or through huggingface_hub (Hub)."""
        if not self.on_hub:
            return self.get_state_dict(progress), self.card()
        from .hub import load

        loaded = load(f"hf-hub:{self.hub_id}")
        if loaded.card.arch not in (None, self.arch):
            raise InvalidOption(f"{self.hub_id} holds {loaded.card.arch}, not {self.arch}; the catalog is out of date")
        return loaded.state, self.card().but(classes=loaded.card.classes or self.card().classes)

    def card(self) -> ModelCard:
        """The model card of these weights."""
        return ModelCard(
            arch=self.arch,
            num_classes=self.num_classes,
            classes=tuple(imagenet_classes()) if self.num_classes == 1000 else None,
            in_chans=self.in_chans,
            preprocess=self.preprocessing(),
            source=f"{self.source} {self.name}",
            tag=self.name,
        )

    def __str__(self) -> str:
        return self.name


def _data(name: str) -> list:
    return json.loads(resources.files("resnetkit.weights").joinpath(f"data/{name}").read_text())


@cache
def catalog() -> Dict[str, WeightsEntry]:
    """Every entry by name: torchvision's weights (data/catalog.json), then every pretrained tag of
    timm's ResNets (data/timm_catalog.json, made by scripts/make_timm_catalog.py). A timm tag whose
    file is a torchvision file (``tv_in1k``) is downloaded from torchvision's URL, hash-checked."""
    entries = {}
    for r in _data("catalog.json"):
        r = dict(r, min_size=tuple(r["min_size"]), legacy_files=tuple(r.get("legacy_files", [])))
        entries[r["name"]] = WeightsEntry(**r)
    by_url = {e.url: e for e in entries.values() if e.url}
    for r in _data("timm_catalog.json"):
        same_file = by_url.get(r.pop("timm_url", None))
        r.pop("eval_crop_pct", None)
        if same_file is not None:
            r.update(url=same_file.url, file_name=same_file.file_name, sha256_prefix=same_file.sha256_prefix,
                     file_size_mb=same_file.file_size_mb, legacy_files=same_file.legacy_files)  # fmt: skip
        entries[r["name"]] = WeightsEntry(**r, source="timm")
    return entries


def default_for(arch: str) -> Optional[WeightsEntry]:
    for e in catalog().values():
        if e.arch == arch and e.default:
            return e
    return None


def find_weights(name: str, arch: Optional[str] = None) -> Optional[WeightsEntry]:
    """Catalog entry for ``arch.TAG``, ``arch.DEFAULT``, or a bare ``TAG``/``DEFAULT`` when ``arch`` is given."""
    if not isinstance(name, str):
        return None
    if "." not in name and arch is not None:
        name = f"{arch}.{name}"
    if name.endswith(".DEFAULT"):
        return default_for(name[: -len(".DEFAULT")])
    if name in catalog():
        return catalog()[name]
    return _aliases().get(name.lower())


@cache
def _aliases() -> Dict[str, WeightsEntry]:
    """Lower-case names, plus timm's own spelling of timm weights ("resnet50.a1_in1k")."""
    table = {}
    for key, entry in catalog().items():
        table[key.lower()] = entry
    return table


def get_weights(name: str) -> WeightsEntry:
    """The catalog entry of published weights, by full name.

    Args:
        name: ``ARCH.TAG``, e.g. ``"resnet50.IMAGENET1K_V2"`` (or timm's ``"resnet50.a1_in1k"``).

    Returns:
        The WeightsEntry: ``url``, ``sha256``, ``meta`` (accuracy, classes), ``transforms()``.

    Raises:
        InvalidOption: an unknown name (a ValueError), listing the closest known ones.

    Examples:
        >>> import resnetkit as rk
        >>> rk.get_weights("resnet50.IMAGENET1K_V2").meta["metrics"]["ImageNet-1K"]["acc@1"]
        80.858
    """
    entry = find_weights(name)
    if entry is None:
        close = difflib.get_close_matches(str(name), list(catalog()), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else "see `resnetkit weights list`"
        raise InvalidOption(f"unknown weights {name!r}: {hint}")
    return entry


def list_weights(arch: Optional[str] = None) -> List[WeightsEntry]:
    """The published weights in the catalog: torchvision's, and every pretrained tag of timm's ResNets.

    Args:
        arch: only this architecture's (default: all).

    Returns:
        WeightsEntry objects, in catalog order.

    Raises:
        Nothing: an unknown ``arch`` gives an empty list.

    Examples:
        >>> import resnetkit as rk
        >>> [e.name for e in rk.list_weights("resnet18")][:3]
        ['resnet18.IMAGENET1K_V1', 'resnet18.a1_in1k', 'resnet18.a2_in1k']
    """
    return [e for e in catalog().values() if arch is None or e.arch == arch]


class WeightsEnum(enum.Enum):
    """Enum of an architecture's weights; members are WeightsEntry values (``.url``, ``.meta``,
    ``.transforms()``), plus ``DEFAULT`` as an alias of the best one."""

    @property
    def entry(self) -> WeightsEntry:
        return self.value

    def __getattr__(self, item):
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self.value, item)

    @classmethod
    def verify(cls, obj):
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            try:
                return cls[obj.split(".")[-1]]
            except KeyError:
                raise InvalidOption(f"{obj!r} is not one of {', '.join(cls.__members__)}") from None
        raise InvalidOption(f"expected {cls.__name__} or its member name, got {obj!r}")


def _make_enum(name: str, arch: str) -> Type[WeightsEnum]:
    members = {e.tag: e for e in list_weights(arch)}
    default = default_for(arch)
    if default is not None:
        members["DEFAULT"] = default  # same value: an alias, as in torchvision
    return WeightsEnum(name, members, module=__name__)  # type: ignore[call-arg,return-value]


# torchvision's enum names, one per architecture with published weights.
ResNet18_Weights = _make_enum("ResNet18_Weights", "resnet18")
ResNet34_Weights = _make_enum("ResNet34_Weights", "resnet34")
ResNet50_Weights = _make_enum("ResNet50_Weights", "resnet50")
ResNet101_Weights = _make_enum("ResNet101_Weights", "resnet101")
ResNet152_Weights = _make_enum("ResNet152_Weights", "resnet152")
ResNeXt50_32X4D_Weights = _make_enum("ResNeXt50_32X4D_Weights", "resnext50_32x4d")
ResNeXt101_32X8D_Weights = _make_enum("ResNeXt101_32X8D_Weights", "resnext101_32x8d")
ResNeXt101_64X4D_Weights = _make_enum("ResNeXt101_64X4D_Weights", "resnext101_64x4d")
Wide_ResNet50_2_Weights = _make_enum("Wide_ResNet50_2_Weights", "wide_resnet50_2")
Wide_ResNet101_2_Weights = _make_enum("Wide_ResNet101_2_Weights", "wide_resnet101_2")

WEIGHT_ENUMS = {
    "resnet18": ResNet18_Weights,
    "resnet34": ResNet34_Weights,
    "resnet50": ResNet50_Weights,
    "resnet101": ResNet101_Weights,
    "resnet152": ResNet152_Weights,
    "resnext50_32x4d": ResNeXt50_32X4D_Weights,
    "resnext101_32x8d": ResNeXt101_32X8D_Weights,
    "resnext101_64x4d": ResNeXt101_64X4D_Weights,
    "wide_resnet50_2": Wide_ResNet50_2_Weights,
    "wide_resnet101_2": Wide_ResNet101_2_Weights,
}
