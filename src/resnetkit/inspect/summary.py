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

from ..models import BasicBlock, Bottleneck, ResNetBase
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
            counts[name] = LayerCount(name, "conv", *io, 0)
        elif isinstance(module, nn.Linear):
            counts[name] = LayerCount(name, "linear", *io, 0)

    from ..measure import count_macs

    traced = (nn.Conv2d, nn.Linear, nn.MaxPool2d, BasicBlock, Bottleneck)
    # MACs come from torch's FLOP counter; the tracer gives shapes and which layer counts what.
    with Tracer(model, keep=lambda m: isinstance(m, traced), on_call=count) as tracer:
        _, per_module = count_macs(model, input_size, in_chans)
    shapes = tracer.shapes
    for name, count in counts.items():
        count.macs = per_module.get(name, 0)
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


def block_spec(block: nn.Module) -> str:
    """The paper's notation for one block, e.g. ``1x1, 64 | 3x3, 64 | 1x1, 256``."""
    if isinstance(block, Bottleneck):
        convs = [block.conv1, block.conv2, block.conv3]
    elif isinstance(block, BasicBlock):
        convs = [block.conv1, block.conv2]
    else:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return " | ".join(_conv_spec(c) for c in convs)


def stage_spec(stage: nn.Sequential) -> str:
    specs = [block_spec(b) for b in stage]
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


def _stem_rows(model: ResNetBase, counts, shapes) -> List[StageRow]:
    stem_convs = [m for m in model.conv1.modules() if isinstance(m, nn.Conv2d)]
    stem_spec = " | ".join(
        f"{_conv_spec(c)}, stride {c.stride[0]}" if c.stride[0] > 1 else _conv_spec(c) for c in stem_convs
    )
    stem_out = shapes["layer1.0"][0][1:] if isinstance(model.maxpool, nn.Identity) else shapes["maxpool"][0][1:]
    params = _params(model.conv1) + _params(model.bn1)
    rows = [StageRow("conv1", "conv1", stem_out, stem_spec, 1, params, _macs_under(counts, "conv1"))]
    mp = model.maxpool
    if isinstance(mp, nn.MaxPool2d):
        spec = f"{mp.kernel_size}x{mp.kernel_size} max pool, stride {mp.stride}"
        rows.append(StageRow("pool", "maxpool", shapes["maxpool"][1][1:], spec, 1, 0, 0))
    return rows


def _block_row(name: str, block: Any, counts, shapes) -> BlockRow:
    in_shape, out_shape = shapes[name]
    spatial = [c for c in block.modules() if isinstance(c, nn.Conv2d) and c.kernel_size[0] > 1]
    return BlockRow(
        name,
        type(block).__name__,
        in_shape,
        out_shape,
        int(block.stride),
        max((c.dilation[0] for c in spatial), default=1),
        block.downsample is not None,
        _projection_reason(block, in_shape, out_shape),
        _params(block),
        _macs_under(counts, name),
    )


def _head_row(model: ResNetBase, counts) -> StageRow:
    fc = model.fc
    if isinstance(fc, nn.Linear):
        spec = f"average pool, {fc.in_features}-d fc, {fc.out_features} outputs"
    else:
        spec = f"average pool, {model.num_features}-d features (no classifier)"
    return StageRow("head", "fc", [1, 1], spec, 1, _params(fc), _macs_under(counts, "fc"))


def summarize(
    model: ResNetBase, input_size: Tuple[int, int] = (224, 224), arch: str = "custom", config: Optional[dict] = None
) -> Summary:
    """Table 1 rows, per-block rows and totals for ``model`` at ``input_size`` (H, W)."""
    counts, shapes = trace_layers(model, input_size, model.in_chans)
    stages = _stem_rows(model, counts, shapes)
    blocks: List[BlockRow] = []
    for i, name in enumerate(model.stage_names, start=1):
        stage = getattr(model, name)
        blocks += [_block_row(f"{name}.{j}", block, counts, shapes) for j, block in enumerate(stage)]
        out_size = shapes[f"{name}.{len(stage) - 1}"][1][1:]
        spec = stage_spec(stage)
        stages.append(
            StageRow(f"conv{i + 1}_x", name, out_size, spec, len(stage), _params(stage), _macs_under(counts, name))
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
