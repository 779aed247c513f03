"""One interface for every model of the family (ResNet, the CIFAR ResNets, backbones).

The methods follow timm's model contract (``forward_features``, ``forward_head``,
``forward_intermediates``, ``prune_intermediate_layers``, ``reset_classifier``,
``set_grad_checkpointing``, ``group_matcher``, ``feature_info``, ``pretrained_cfg``), so code
written for timm models works here; they are implemented once, on top of the module layout the
family shares: ``conv1``/``bn1``/``relu``/``maxpool`` (the stem), ``layer1``..``layerN`` (the
stages), ``avgpool`` and ``fc`` (the head).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..card import ModelCard, Preprocess
from ..errors import InvalidOption

GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax", "")


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_num_classes(num_classes: Any) -> int:
    if not is_int(num_classes) or num_classes < 0:
        raise InvalidOption(
            f"num_classes must be an integer >= 0 (0 gives a head without classifier), got {num_classes!r}"
        )
    return int(num_classes)


@torch.fx.wrap
def check_input(x: Tensor, in_chans: int) -> Tensor:
    """Reject inputs that are not float (N, in_chans, H, W) with a message naming what is expected.

    Wrapped for torch.fx so that symbolic tracing records the check as one call instead of
    failing on data-dependent control flow; scripting and compile see plain Python.
    """
    if not isinstance(x, Tensor):
        kind = f"{type(x).__module__}.{type(x).__name__}"
        hint = "torch.from_numpy(x)" if kind.startswith("numpy") else "torch.as_tensor(x)"
        raise InvalidOption(f"ResNet takes a torch.Tensor (N, {in_chans}, H, W), got {kind}; convert it with {hint}")
    if x.dim() != 4:
        raise InvalidOption(
            f"ResNet expects a 4-D input (N, {in_chans}, H, W), got a {x.dim()}-D tensor of shape "
            f"{list(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if x.shape[1] != in_chans:
        if x.shape[-1] == in_chans and x.shape[1] != in_chans:
            raise InvalidOption(
                f"ResNet expects {in_chans} input channels in dimension 1 (N, {in_chans}, H, W), got shape "
                f"{list(x.shape)}, which looks channels-last (N, H, W, C); use x.permute(0, 3, 1, 2)"
            )
        raise InvalidOption(
            f"ResNet expects {in_chans} input channels (N, {in_chans}, H, W), got shape {list(x.shape)}; "
            f"build the model with in_chans={x.shape[1]} or convert the images to {in_chans} channels"
        )
    if not x.is_floating_point():
        raise InvalidOption(
            f"ResNet expects a floating-point input (float32, or bf16/fp16 matching the model), got {x.dtype}; "
            "convert images with x.float() / 255 and normalize them (see weights.transforms())"
        )
    return x


def _fx_tracing() -> bool:
    trace = torch.fx._symbolic_trace
    check = getattr(trace, "is_fx_symbolic_tracing", None) or trace.is_fx_tracing
    return bool(check())


def feature_take_indices(num_features: int, indices: Union[None, int, Sequence[int]]) -> Tuple[List[int], int]:
    """timm's index convention: ``None`` = all, an int ``n`` = the last n, a sequence = those
    positions (negative ones count from the end). Out of range is an error, never an empty list.
    Returns (sorted indices, the largest)."""
    if indices is None:
        take = list(range(num_features))
    elif isinstance(indices, int) and not isinstance(indices, bool):
        if not 0 < indices <= num_features:
            raise InvalidOption(
                f"indices={indices}: an integer asks for the last n feature maps, n in 1..{num_features}"
            )
        take = list(range(num_features - indices, num_features))
    else:
        try:
            raw = [int(i) for i in indices]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InvalidOption(f"indices must be None, an int or a sequence of ints, got {indices!r}") from None
        if not raw:
            raise InvalidOption("indices is empty; pass None for every feature map")
        take = []
        for i in raw:
            j = num_features + i if i < 0 else i
            if not 0 <= j < num_features:
                raise InvalidOption(
                    f"feature index {i} is out of range: this model has {num_features} feature maps "
                    f"(0 = stem .. {num_features - 1} = last stage; -1 = last)"
                )
            take.append(j)
        take = sorted(set(take))
    return take, max(take)


class FeatureInfo(list):
    """The feature maps a model can return: a list of dicts (``num_chs``, ``reduction``,
    ``module``, ``index``) with timm's FeatureInfo accessors.

    Examples:
        >>> import resnetkit as rk
        >>> rk.resnet50().feature_info.channels()
        [64, 256, 512, 1024, 2048]
    """

    def get(self, key: str, idx: Union[None, int, Sequence[int]] = None):  # type: ignore[override]
        if idx is None:
            return [f[key] for f in self]
        if is_int(idx):
            return self[idx][key]  # type: ignore[index]
        return [self[i][key] for i in idx]  # type: ignore[union-attr]

    def channels(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("num_chs", idx)

    def reduction(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("reduction", idx)

    def module_name(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("module", idx)


class SelectAdaptivePool(nn.Module):
    """Global pooling by name: avg, max, avgmax (their mean), catavgmax (concatenated), or ''
    (no pooling, the feature map passes through)."""

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in GLOBAL_POOLS:
            raise InvalidOption(f"global_pool {pool_type!r} is not one of {', '.join(map(repr, GLOBAL_POOLS))}")
        self.pool_type = pool_type

    @property
    def multiplier(self) -> int:
        return 2 if self.pool_type == "catavgmax" else 1

    def forward(self, x: Tensor) -> Tensor:
        if self.pool_type == "":
            return x
        if self.pool_type == "avg":
            return x.mean((2, 3), keepdim=True)
        mx = torch.amax(x, dim=(2, 3), keepdim=True)
        if self.pool_type == "max":
            return mx
        avg = x.mean((2, 3), keepdim=True)
        return 0.5 * (avg + mx) if self.pool_type == "avgmax" else torch.cat([avg, mx], dim=1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


class _KeepNormStats:
    """Checkpoint recomputation context: running statistics of norm layers are restored after the
    recomputed forward, so gradient checkpointing does not update BatchNorm twice per step."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: List[Tuple[Tensor, Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [
            (b, b.detach().clone())
            for name, b in self.module.named_buffers()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
        ]

    def __exit__(self, *exc: Any) -> None:
        with torch.no_grad():
            for buf, value in self.saved:
                buf.copy_(value)
        self.saved = []


def _run_checkpointed(block: nn.Module, x: Tensor) -> Tensor:
    from torch.utils.checkpoint import checkpoint

    def contexts():
        return contextlib.nullcontext(), _KeepNormStats(block)

    return checkpoint(block, x, use_reentrant=False, context_fn=contexts)


def default_card(model: ResNetBase) -> ModelCard:
    """What a model is before any weights are loaded: its architecture, and ImageNet's preprocessing
    at the size the family is designed for (224 px; 32 for the CIFAR ResNets)."""
    return ModelCard(
        arch=model.arch,
        num_classes=model.num_classes,
        in_chans=model.in_chans,
        preprocess=Preprocess.for_input_size(model.default_input_size),
    )


class ResNetBase(nn.Module):
    """What every model of the family offers; subclasses build the modules named in the module
    docstring and set ``in_chans``, ``num_classes``, ``num_features``, ``stage_names`` and
    ``feature_info`` (stem first, then one entry per stage)."""

    # Attribute types for type checkers only: TorchScript would compile class annotations.
    if TYPE_CHECKING:
        in_chans: int
        num_classes: int
        num_features: int
        stage_names: Tuple[str, ...]
        feature_info: FeatureInfo
        flatten_head: bool
        grad_checkpointing: bool
        stem_reduction: int
        conv1: nn.Module
        bn1: nn.Module
        relu: nn.Module
        maxpool: nn.Module
        avgpool: nn.Module
        fc: nn.Module
        arch: Optional[str]

    arch = None  # the registered name (str), set by the builders
    default_input_size = 224  # the image side the family is designed for
    # TorchScript compiles properties unless told not to; these are Python-side metadata.
    __jit_unused_properties__ = ["card", "pretrained_cfg", "default_cfg", "intermediate_info", "head_hidden_size"]

    def __init__(self) -> None:
        super().__init__()
        self.flatten_head = True  # False once reset_classifier(0, global_pool='') removes pooling
        self.grad_checkpointing = False

    # ---- configuration -------------------------------------------------------------------------

    @property
    def card(self) -> ModelCard:
        """What this model is (architecture, classes, preprocessing, where its weights came from):
        loading weights sets it, and predict/eval/export/serve read it from here."""
        card = self.__dict__.get("_card")
        if card is None or card.num_classes != self.num_classes:
            card = default_card(self) if card is None else card.but(num_classes=self.num_classes, classes=None)
            self.__dict__["_card"] = card
        return card

    @card.setter
    def card(self, value: ModelCard) -> None:
        if not isinstance(value, ModelCard):
            raise InvalidOption(f"model.card must be a ModelCard, got {type(value).__name__}", field="card")
        self.__dict__["_card"] = value

    @property
    def pretrained_cfg(self) -> Dict[str, Any]:
        """timm's ``pretrained_cfg`` (architecture, input size, crop_pct, mean, std, classifier, ...),
        computed from the model's card and its structure. Assigning a timm-style dict updates the card."""
        size = self.card.input_size
        pool = -(-size // self.feature_info[-1]["reduction"])
        cfg = self.card.pretrained_cfg(first_conv=self.first_conv, pool_size=(pool, pool))
        cfg["classifier"] = self.classifier_name
        return cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, value: Dict[str, Any]) -> None:
        card = self.card
        size = value.get("input_size")
        if size is not None:
            crop = int(size[-1])
            pct = float(value.get("crop_pct") or card.preprocess.crop_pct)
            card = card.but(
                preprocess=Preprocess(
                    resize_size=int(math.floor(crop / pct)),
                    crop_size=crop,
                    interpolation=value.get("interpolation", card.preprocess.interpolation),
                    mean=value.get("mean", card.preprocess.mean),
                    std=value.get("std", card.preprocess.std),
                )
            )
        names = value.get("classes")
        self.card = card.but(
            arch=value.get("architecture", card.arch),
            tag=value.get("tag", card.tag),
            classes=names if names and len(names) == self.num_classes else card.classes,
        )

    @property
    def default_cfg(self) -> Dict[str, Any]:  # timm's older name
        return self.pretrained_cfg

    @property
    def head_hidden_size(self) -> int:
        """The size of the pooled features ``forward_head(pre_logits=True)`` returns (timm's name)."""
        return self.num_features * getattr(self.avgpool, "multiplier", 1)

    @property
    def classifier_name(self) -> str:
        """The classifier's module name (its weights are ``NAME.weight`` and ``NAME.bias``)."""
        return "fc"

    @property
    def first_conv(self) -> str:
        """The input convolution's module name (timm's ``first_conv``)."""
        return "conv1.0" if isinstance(self.conv1, nn.Sequential) else "conv1"

    def stem_modules(self) -> List[Tuple[str, nn.Module]]:
        """The stem's modules in order, by name: what runs before the first stage."""
        return [("conv1", self.conv1), ("bn1", self.bn1), ("relu", self.relu), ("maxpool", self.maxpool)]

    def stage(self, name: str) -> nn.Module:
        """A stage by its name in ``stage_names`` (``layer1``, or ``stages.0`` for a ResNetV2)."""
        return self.get_submodule(name)

    def stage_blocks(self, name: str) -> List[Tuple[str, nn.Module]]:
        """The residual blocks of a stage, with their full module names (``layer1.0``, or
        ``stages.0.blocks.0`` for a ResNetV2)."""
        stage = self.stage(name)
        inner = getattr(stage, "blocks", stage)
        prefix = f"{name}.blocks" if inner is not stage else name
        return [(f"{prefix}.{j}", block) for j, block in enumerate(inner)] if isinstance(inner, nn.Sequential) else []

    @property
    def intermediate_info(self) -> FeatureInfo:
        """The maps ``forward_intermediates`` can return (the stem and every stage)."""
        return self.__dict__.get("_intermediate_info", self.feature_info)

    @intermediate_info.setter
    def intermediate_info(self, value: FeatureInfo) -> None:
        self.__dict__["_intermediate_info"] = value

    # ---- forward -------------------------------------------------------------------------------

    @torch.jit.unused
    def check_dtype(self, x: Tensor) -> None:
        """Eager mode only: an input whose dtype differs from the weights' gets a message naming both
        (PyTorch's own says 'expected scalar type Double but found Float')."""
        if _fx_tracing() or torch.compiler.is_compiling():
            return
        weight = next(self.parameters(), None)
        if (
            weight is not None
            and x.is_floating_point()
            and x.dtype != weight.dtype
            and not torch.is_autocast_enabled(x.device.type)
        ):
            raise InvalidOption(
                f"the input is {x.dtype} but the model's weights are {weight.dtype}; convert the input with "
                f"x.to({weight.dtype}) (or the model with model.to({x.dtype}))"
            )

    def forward_stem(self, x: Tensor) -> Tensor:
        """Stem up to its activation (feature index 0), before the max-pool."""
        x = check_input(x, self.in_chans)
        if not torch.jit.is_scripting():
            self.check_dtype(x)
        return self.relu(self.bn1(self.conv1(x)))

    def stem_pool(self, x: Tensor) -> Tensor:
        """The rest of the stem: from feature index 0 to what the first stage receives."""
        return self.maxpool(x)

    def final_norm(self, x: Tensor) -> Tensor:
        """What follows the last stage before the head (a pre-activation network's norm; else nothing)."""
        return x

    @torch.jit.unused
    def _run_stage(self, stage: nn.Module, x: Tensor) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            blocks = list(stage) if isinstance(stage, nn.Sequential) else [stage]
            for block in blocks:
                x = _run_checkpointed(block, x)
            return x
        return stage(x)

    @torch.jit.unused
    def _run_stages(self, x: Tensor) -> Tensor:
        for name in self.stage_names:
            x = self._run_stage(self.stage(name), x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and every stage (and a final norm, where there is one): the last feature map."""
        return self.final_norm(self._run_stages(self.stem_pool(self.forward_stem(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global pool and classifier; ``pre_logits=True`` returns the pooled features."""
        x = self.avgpool(x)
        if self.flatten_head:
            x = torch.flatten(x, 1)
        if pre_logits:
            return x
        return self.fc(x)

    def classify(self, features: Tensor) -> Tensor:
        """The classifier alone, on pooled features (N, head_hidden_size): the logits."""
        return self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: Union[None, int, Sequence[int]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """One pass that also returns feature maps (timm's semantics): index 0 is the stem after
        its activation, 1.. the stages; ``indices`` None = all, int n = the last n, negative
        indices count from the end. Returns (last feature map, maps), or the maps alone with
        ``intermediates_only``; ``stop_early`` skips the stages after the last one asked for.
        ``norm=True`` applies a pre-activation network's final norm to the last stage's map (a
        ResNet v1 has none)."""
        if output_fmt != "NCHW":
            raise InvalidOption(f"output_fmt {output_fmt!r}: ResNets produce NCHW feature maps only")
        take, last = feature_take_indices(len(self.intermediate_info), indices)
        maps: List[Tensor] = []
        x = self.forward_stem(x)
        if 0 in take:
            maps.append(x)
        x = self.stem_pool(x)
        stages = self.stage_names[:last] if (stop_early or intermediates_only) else self.stage_names
        final = len(self.stage_names)
        for i, name in enumerate(stages, start=1):
            x = self._run_stage(self.stage(name), x)
            if i in take:
                maps.append(self.final_norm(x) if (norm and i == final) else x)
        if intermediates_only:
            return maps
        if len(stages) == final:
            x = self.final_norm(x)
        return x, maps

    def prune_intermediate_layers(
        self, indices: Union[None, int, Sequence[int]] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the stages after the last index wanted (and the head), for a model used only
        through ``forward_intermediates``. Returns the kept indices."""
        take, last = feature_take_indices(len(self.intermediate_info), indices)
        self.truncate(last)
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def truncate(self, last: int) -> Tuple[str, ...]:
        """Keep the stem and the first ``last`` stages (a backbone); returns the names of the modules
        that no longer compute anything (their weights are skipped when a classifier's are loaded)."""
        dropped = self.stage_names[last:]
        for name in dropped:
            setattr(self, name, nn.Identity())
        self.stage_names = self.stage_names[:last]
        return tuple(dropped) + ("fc",)

    # ---- head ----------------------------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A fresh ``num_classes``-way linear head (0: none, pooled features out); ``global_pool``
        one of avg, max, avgmax, catavgmax or '' (no pooling: needs num_classes=0). The model is
        unchanged if an argument is refused."""
        num_classes = check_num_classes(num_classes)
        pool = self.avgpool
        if global_pool is not None:
            pool = SelectAdaptivePool(global_pool)
            if global_pool == "" and num_classes > 0:
                raise InvalidOption("global_pool='' (no pooling) needs num_classes=0: a linear head needs pooled input")
            if global_pool == "avg":
                pool = nn.AdaptiveAvgPool2d((1, 1))  # torchvision's module, as built
        multiplier = pool.multiplier if isinstance(pool, SelectAdaptivePool) else 1
        ref = next(self.parameters(), None)
        kwargs: Dict[str, Any] = {}
        if ref is not None and ref.is_floating_point():
            kwargs = {"device": ref.device, "dtype": ref.dtype}
        fc = nn.Linear(self.num_features * multiplier, num_classes, **kwargs) if num_classes > 0 else nn.Identity()
        self.avgpool, self.fc, self.num_classes = pool, fc, num_classes
        self.flatten_head = global_pool != "" if global_pool is not None else self.flatten_head
        self.card = self.card.but(num_classes=num_classes, classes=None)

    # ---- training helpers ----------------------------------------------------------------------

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them
        (activation checkpointing, per block): far less memory for a little more compute.
        BatchNorm running statistics are updated once per step, as without it."""
        self.grad_checkpointing = bool(enable)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        """Regexes grouping parameter names (stem, then stages or blocks), for layer-wise
        learning-rate decay; timm's convention."""
        return {"stem": r"^conv1|^bn1|^maxpool", "blocks": r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"}
