"""Shapes and sizes of a network, measured on it: a tracer of every module's input and output shape,
the ``(W - F + 2P) / S + 1`` arithmetic of strided and dilated layers, why a block's shortcut
projects, and the receptive field after each stage. ``summary`` and ``explain`` both use these."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..models import ResNetBase


def pair(v) -> Tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def size_arithmetic(module: nn.Module, in_side: int, out_side: int) -> Optional[str]:
    """``(W - F + 2P) / S + 1`` spelled out for a strided or dilated convolution or pooling layer."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None
    f, s, p = pair(module.kernel_size)[0], pair(module.stride)[0], pair(module.padding)[0]
    d = pair(getattr(module, "dilation", 1))[0]
    if s == 1 and d == 1:
        return None
    eff = d * (f - 1) + 1
    lead = f"F = {d}·({f} − 1) + 1 = {eff} (dilation {d}); " if d > 1 else ""
    exact = (in_side - eff + 2 * p) / s + 1
    rounded = "" if exact == out_side else f" → {out_side} (rounded down)"
    return f"{lead}(W − F + 2P) / S + 1 = ({in_side} − {eff} + 2·{p}) / {s} + 1 = {exact:g}{rounded}"


def layer_spec(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = pair(module.kernel_size)
        kind = "weight-standardised conv" if type(module).__name__ == "StdConv2d" else "conv"
        text = f"{kind} {k[0]}x{k[1]}, {module.in_channels}→{module.out_channels}"
        s, d = pair(module.stride)[0], pair(module.dilation)[0]
        text += f", stride {s}" if s > 1 else ""
        text += f", groups {module.groups}" if module.groups > 1 else ""
        return text + (f", dilation {d}" if d > 1 else "")
    if isinstance(module, nn.MaxPool2d):
        return f"max pool {pair(module.kernel_size)[0]}x{pair(module.kernel_size)[0]}, stride {pair(module.stride)[0]}"
    if isinstance(module, nn.Linear):
        return f"fully connected {module.in_features}→{module.out_features}"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global average pool"
    if isinstance(module, nn.AvgPool2d):
        size = pair(module.kernel_size)[0]
        return f"average pool {size}x{size}, stride {pair(module.stride)[0]}"
    if type(module).__name__ == "SelectAdaptivePool":
        return f"global {getattr(module, 'pool_type', 'avg') or 'no'} pool"
    if type(module).__name__ == "BlurPool2d":
        return f"blur 3x3 (anti-aliasing), stride {getattr(module, 'stride', 2)}"
    if isinstance(module, nn.ConstantPad2d):
        return "zero padding 1 (BiT's fixed 'same' padding)"
    if type(module).__name__ == "SqueezeExcitation":
        return "squeeze-and-excitation (channel gate)"
    if type(module).__name__ == "EfficientChannelAttention":
        return "efficient channel attention (channel gate)"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if "Norm" in type(module).__name__:
        return f"{type(module).__name__} ({getattr(module, 'num_features', getattr(module, 'num_channels', ''))})"
    return type(module).__name__


class Tracer:
    """Forward hooks on the modules of ``net`` (all, or those ``keep(module)`` accepts): the input and
    output shape of each one's first call, ``shapes[name] = (in, out)`` without the batch axis.
    ``on_call(name, module, io)`` is told of each first call too (summary counts layers with it)."""

    def __init__(self, net: nn.Module, keep=None, on_call=None) -> None:
        self.shapes: Dict[str, Tuple[List[int], List[int]]] = {}
        self.on_call = on_call
        self.handles = [
            m.register_forward_hook(self._hook(name))
            for name, m in net.named_modules()
            if name and (keep is None or keep(m))
        ]

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _hook(self, name: str):
        def fn(module, inputs, output):
            if (
                name not in self.shapes
                and inputs
                and isinstance(inputs[0], torch.Tensor)
                and isinstance(output, torch.Tensor)
            ):
                self.shapes[name] = (list(inputs[0].shape[1:]), list(output.shape[1:]))
                if self.on_call is not None:
                    self.on_call(name, module, self.shapes[name])

        return fn

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _grow(rf: Tuple[int, int], module: nn.Module) -> Tuple[int, int]:
    """(receptive field, jump) after ``module`` on the main path."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        f, s = pair(module.kernel_size)[0], pair(module.stride)[0]
        d = pair(getattr(module, "dilation", 1))[0]
        size, jump = rf
        return size + (d * (f - 1)) * jump, jump * s
    if isinstance(module, nn.ConstantPad2d):
        return rf
    if type(module).__name__ == "BlurPool2d":  # a fixed 3x3 low-pass, then the stride
        size, jump = rf
        stride = int(getattr(module, "stride", 2))
        return size + 2 * jump, jump * stride
    return rf


def _main_path(module: nn.Module):
    """The layers of a residual branch in forward order: not the shortcut, not the attention gate."""
    for name, child in module.named_children():
        if name in ("downsample", "se"):
            continue
        if isinstance(child, nn.Sequential):
            yield from _main_path(child)
        else:
            yield child


def receptive_fields(net: ResNetBase) -> Dict[str, int]:
    """Receptive field (in input pixels) of one output position after the stem and after each stage,
    along the main path (the widest path: the shortcut never sees further)."""
    rf = (1, 1)
    out = {}
    for _, module in net.stem_modules():
        for m in module.modules():
            rf = _grow(rf, m)
    out["stem"] = rf[0]
    for name in net.stage_names:
        for _, block in net.stage_blocks(name):
            for child in _main_path(block):
                rf = _grow(rf, child)
        out[name] = rf[0]
    return out


def projection_why(in_shape: Optional[List[int]], out_shape: Optional[List[int]]) -> List[Tuple[str, str]]:
    """Why a block's shortcut must project, as (short, spelled out) pairs: ("stride", "the block
    halves the size (56 → 28)"), ("channels", "the block changes the channels (64 → 256)"). Empty
    when the shapes do not say (a projection that is only configured)."""
    if not in_shape or not out_shape:
        return []
    why = []
    if in_shape[1:] != out_shape[1:]:
        why.append(("stride", f"the block halves the size ({in_shape[-1]} → {out_shape[-1]})"))
    if in_shape[0] != out_shape[0]:
        why.append(("channels", f"the block changes the channels ({in_shape[0]} → {out_shape[0]})"))
    return why
