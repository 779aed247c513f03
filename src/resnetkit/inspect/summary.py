"""The architecture explained from the real model: He et al.'s Table 1, a per-block trace, params, MACs.

Everything is measured on the model itself with forward hooks (on the meta device, so even
wide_resnet101_2 costs no memory or time), never read from a table: custom configurations,
odd input sizes and dilation come out right by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..models import ResNetBase
from ..models.attention import BlurPool2d
from .trace import Tracer, projection_why

COUNTED = (
    "multiply-accumulates (MACs) of convolutions and fully connected layers, per image; "
    "norm layers, ReLU, pooling and residual additions are not counted (they add under 1 %)"
)
SCHEMA_VERSION = 1


@dataclass
class LayerCount:
    name: str
    kind: str
    in_shape: List[int]
    out_shape: List[int]
    macs: int


@dataclass
class BlockRow:
    name: str
    block: str
    in_shape: List[int]
    out_shape: List[int]
    stride: int
    dilation: int
    projection: bool
    projection_reason: Optional[str]
    params: int
    macs: int


@dataclass
class StageRow:
    name: str  # conv1, pool, conv2_x ... conv5_x, head
    module: str  # conv1 / maxpool / layer1 ... / fc
    output_size: List[int]  # [H, W], or [] for the head
    spec: str
    blocks: int
    params: int
    macs: int


@dataclass
class Summary:
    arch: str
    input_size: Tuple[int, int]
    in_chans: int
    num_classes: int
    stages: List[StageRow]
    blocks: List[BlockRow]
    total_params: int
    total_macs: int
    counted: str = COUNTED
    schema_version: int = SCHEMA_VERSION
    config: Dict[str, object] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.total_macs / 1e9

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["total_gmacs"] = round(self.gmacs, 6)
        return d


def trace_layers(
    model: nn.Module, input_size: Tuple[int, int], in_chans: int
) -> Tuple[Dict[str, LayerCount], Dict[str, Tuple[List[int], List[int]]]]:
    """One forward pass of one image: MACs and shapes of every conv and linear layer, and the
    (input, output) shapes of every block and pooling layer, keyed by module name."""
    counts: Dict[str, LayerCount] = {}

    def count(name: str, module: nn.Module, io) -> None:
        if isinstance(module, nn.Conv2d):
            counts[name] = LayerCount(name, "conv", io[0], io[1], 0)
        elif isinstance(module, nn.Linear):
            counts[name] = LayerCount(name, "linear", io[0], io[1], 0)

    from ..measure import count_macs

    traced = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d)
    blocks = {id(b) for name in getattr(model, "stage_names", ()) for _, b in model.stage_blocks(name)}  # type: ignore[operator]
    stem = {id(m) for _, m in model.stem_modules()} if hasattr(model, "stem_modules") else set()  # type: ignore[operator]
    # MACs come from torch's FLOP counter; the tracer gives shapes and which layer counts what.
    keep = lambda m: isinstance(m, traced) or id(m) in blocks or id(m) in stem  # noqa: E731
    with Tracer(model, keep=keep, on_call=count) as tracer:
        _, per_module = count_macs(model, input_size, in_chans)
    shapes = tracer.shapes
    for name, layer in counts.items():
        layer.macs = per_module.get(name, 0)
    return counts, shapes


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _macs_under(counts: Dict[str, LayerCount], prefix: str) -> int:
    return sum(c.macs for n, c in counts.items() if n == prefix or n.startswith(prefix + "."))


def _conv_spec(conv: nn.Conv2d) -> str:
    k = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}, {conv.out_channels}"
    if conv.groups > 1:
        k += f", C={conv.groups}"
    if conv.dilation[0] > 1:
        k += f", d={conv.dilation[0]}"
    return k


def block_convs(block: nn.Module) -> List[nn.Conv2d]:
    """The convolutions of a block's residual branch, in order (not its shortcut or its attention)."""
    named = [getattr(block, n, None) for n in ("conv1", "conv2", "conv3")]
    convs = [c for c in named if isinstance(c, nn.Conv2d)]
    return convs or [m for m in block.modules() if isinstance(m, nn.Conv2d)]


def block_spec(block: nn.Module) -> str:
    """The paper's notation for one block, e.g. ``1x1, 64 | 3x3, 64 | 1x1, 256``."""
    return " | ".join(_conv_spec(c) for c in block_convs(block))


def stage_spec(blocks: List[nn.Module]) -> str:
    specs = [block_spec(b) for b in blocks]
    # Dilation may differ between the first block and the rest; show both when it does.
    if all(s == specs[0] for s in specs):
        return f"[{specs[0]}] x {len(specs)}"
    rest = specs[1:]
    tail = (
        f" + [{rest[0]}] x {len(rest)}"
        if all(s == rest[0] for s in rest)
        else " + " + " + ".join(f"[{s}]" for s in rest)
    )
    return f"[{specs[0]}] x 1{tail}"


def _projection_reason(block: nn.Module, in_shape: List[int], out_shape: List[int]) -> Optional[str]:
    if getattr(block, "downsample", None) is None:
        return None
    return " and ".join(kind for kind, _ in projection_why(in_shape, out_shape)) or "configured"


def _pool_spec(pool: nn.Module) -> Optional[str]:
    """How the stem's pooling layer downsamples, in words (None: it does not)."""
    if isinstance(pool, nn.MaxPool2d):
        return f"{pool.kernel_size}x{pool.kernel_size} max pool, stride {pool.stride}"
    if isinstance(pool, nn.AvgPool2d):
        return f"{pool.kernel_size}x{pool.kernel_size} average pool, stride {pool.stride} (anti-aliased)"
    if isinstance(pool, BlurPool2d):
        return f"3x3 blur, stride {pool.stride}"
    if isinstance(pool, nn.Sequential):
        parts = [_pool_spec(m) or type(m).__name__ for m in pool if not isinstance(m, (nn.ReLU, nn.Identity))]
        convs = [m for m in pool if isinstance(m, nn.Conv2d)]
        if convs:
            c = convs[0]
            return f"{c.kernel_size[0]}x{c.kernel_size[1]} conv, stride {c.stride[0]} (instead of a max pool)"
        return " then ".join(p.replace(" (anti-aliased)", "") for p in parts) + " (anti-aliased)"
    return None


def _stem_rows(model: ResNetBase, counts, shapes) -> List[StageRow]:
    modules = model.stem_modules()
    pools = [(n, m) for n, m in modules if n.endswith(("maxpool", "pool")) and _pool_spec(m)]
    body = [(n, m) for n, m in modules if (n, m) not in pools]
    convs = [c for _, m in body for c in m.modules() if isinstance(c, nn.Conv2d)]
    stem_spec = " | ".join(
        f"{_conv_spec(c)}, stride {c.stride[0]}" if c.stride[0] > 1 else _conv_spec(c) for c in convs
    )
    with_conv = [n for n, m in body if any(isinstance(c, nn.Conv2d) for c in m.modules())]
    out = shapes[with_conv[-1]][1][1:]  # the stem's last convolution's output
    params = sum(_params(m) for _, m in body)
    macs = sum(_macs_under(counts, n) for n, _ in body)
    rows = [StageRow("conv1", model.first_conv.rsplit(".", 1)[0], out, stem_spec, 1, params, macs)]
    for name, pool in pools:
        rows.append(
            StageRow(
                "pool", name, shapes[name][1][1:], str(_pool_spec(pool)), 1, _params(pool), _macs_under(counts, name)
            )
        )
    return rows


def _block_row(name: str, block: Any, counts, shapes) -> BlockRow:
    in_shape, out_shape = shapes[name]
    spatial = [c for c in block_convs(block) if c.kernel_size[0] > 1]
    return BlockRow(
        name,
        type(block).__name__,
        in_shape,
        out_shape,
        int(getattr(block, "stride", max(c.stride[0] for c in block_convs(block)))),
        max((c.dilation[0] for c in spatial), default=1),
        block.downsample is not None,
        _projection_reason(block, in_shape, out_shape),
        _params(block),
        _macs_under(counts, name),
    )


def _head_row(model: ResNetBase, counts) -> StageRow:
    fc = model.get_classifier()
    if isinstance(fc, nn.Linear):
        spec = f"average pool, {fc.in_features}-d fc, {fc.out_features} outputs"
    elif isinstance(fc, nn.Conv2d):
        spec = f"average pool, {fc.in_channels}-d 1x1 conv classifier, {fc.out_channels} outputs"
    else:
        spec = f"average pool, {model.num_features}-d features (no classifier)"
    name = model.classifier_name
    return StageRow("head", name, [1, 1], spec, 1, _params(fc), _macs_under(counts, name))


def summarize(
    model: ResNetBase, input_size: Tuple[int, int] = (224, 224), arch: str = "custom", config: Optional[dict] = None
) -> Summary:
    """Table 1 rows, per-block rows and totals for ``model`` at ``input_size`` (H, W)."""
    counts, shapes = trace_layers(model, input_size, model.in_chans)
    stages = _stem_rows(model, counts, shapes)
    blocks: List[BlockRow] = []
    for i, name in enumerate(model.stage_names, start=1):
        members = model.stage_blocks(name)
        blocks += [_block_row(block_name, block, counts, shapes) for block_name, block in members]
        out_size = shapes[members[-1][0]][1][1:]
        spec = stage_spec([b for _, b in members])
        stage = model.stage(name)
        stages.append(
            StageRow(f"conv{i + 1}_x", name, out_size, spec, len(members), _params(stage), _macs_under(counts, name))
        )
    stages.append(_head_row(model, counts))
    return Summary(
        arch=arch,
        input_size=(int(input_size[0]), int(input_size[1])),
        in_chans=model.in_chans,
        num_classes=model.num_classes,
        stages=stages,
        blocks=blocks,
        total_params=_params(model),
        total_macs=sum(c.macs for c in counts.values()),
        config=dict(config or {}),
    )


def summarize_arch(arch: str, input_size: Tuple[int, int] = (224, 224), **options) -> Summary:
    """Build ``arch`` on the meta device (no memory, no init time) and summarize it."""
    from ..models import build_architecture

    with torch.device("meta"):
        model = build_architecture(arch, **options)
    return summarize(model, input_size, arch=arch, config=options)
