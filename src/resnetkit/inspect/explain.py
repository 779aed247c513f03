"""`resnetkit explain`: one self-contained page that walks a learner through a ResNet on a real image.

The page shows the network as the paper draws it (stem, stages, blocks, layers; the shortcut solid
where it is the identity and dashed where a ``downsample`` module projects), the tensor shape after
every layer on the user's image with the size arithmetic at every strided or dilated layer, the most
active channels and a Grad-CAM overlay per stage, the lines of resnetkit's own source that build
each part (read from the installed package: the code that ran), and parameters, MACs and receptive
field per stage. Everything is measured on the model; nothing is read from a table.

This module gathers the facts as plain data; ``explain.html`` draws them. The data travels inside
the page as JSON that the page's script reads with ``JSON.parse`` and places with ``textContent``,
so no name from a model file or an image path can become markup."""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
import secrets
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..card import Preprocess
from ..models import ResNetBase
from ..web import data_uri, script_json
from .summary import summarize

TILES_PER_STAGE = 6
TILE_SIDE = 72
CAM_SIDE = 168
PAGE = Path(__file__).with_name("explain.html")


# ---- the image ------------------------------------------------------------------------------------


def sample_image() -> Tuple[Image.Image, str]:
    """A real photo that ships with scikit-learn (a dependency): ``flower.jpg``, 640x427."""
    import sklearn.datasets

    path = Path(sklearn.datasets.__file__).with_name("images") / "flower.jpg"
    return Image.open(path).convert("RGB"), "flower.jpg (scikit-learn's sample photo)"


def _png(image: Image.Image) -> str:
    return data_uri(image, "PNG")


def _jpeg(image: Image.Image) -> str:
    return data_uri(image, "JPEG", quality=85)


# ---- shapes and size arithmetic ------------------------------------------------------------------


def _pair(v) -> Tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def size_arithmetic(module: nn.Module, in_side: int, out_side: int) -> Optional[str]:
    """``(W - F + 2P) / S + 1`` spelled out for a strided or dilated convolution or pooling layer."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None
    f, s, p = _pair(module.kernel_size)[0], _pair(module.stride)[0], _pair(module.padding)[0]
    d = _pair(getattr(module, "dilation", 1))[0]
    if s == 1 and d == 1:
        return None
    eff = d * (f - 1) + 1
    lead = f"F = {d}·({f} − 1) + 1 = {eff} (dilation {d}); " if d > 1 else ""
    exact = (in_side - eff + 2 * p) / s + 1
    rounded = "" if exact == out_side else f" → {out_side} (rounded down)"
    return f"{lead}(W − F + 2P) / S + 1 = ({in_side} − {eff} + 2·{p}) / {s} + 1 = {exact:g}{rounded}"


def _spec(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = _pair(module.kernel_size)
        text = f"conv {k[0]}x{k[1]}, {module.in_channels}→{module.out_channels}"
        s, d = _pair(module.stride)[0], _pair(module.dilation)[0]
        text += f", stride {s}" if s > 1 else ""
        text += f", groups {module.groups}" if module.groups > 1 else ""
        return text + (f", dilation {d}" if d > 1 else "")
    if isinstance(module, nn.MaxPool2d):
        return (
            f"max pool {_pair(module.kernel_size)[0]}x{_pair(module.kernel_size)[0]}, stride {_pair(module.stride)[0]}"
        )
    if isinstance(module, nn.Linear):
        return f"fully connected {module.in_features}→{module.out_features}"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global average pool"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if "Norm" in type(module).__name__:
        return f"{type(module).__name__} ({getattr(module, 'num_features', getattr(module, 'num_channels', ''))})"
    return type(module).__name__


class Tracer:
    """Forward hooks on every module: the input and output shape of its first call."""

    def __init__(self, net: nn.Module) -> None:
        self.shapes: Dict[str, Tuple[List[int], List[int]]] = {}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in net.named_modules() if name]

    def _hook(self, name: str):
        def fn(module, inputs, output):
            if (
                name not in self.shapes
                and inputs
                and isinstance(inputs[0], torch.Tensor)
                and isinstance(output, torch.Tensor)
            ):
                self.shapes[name] = (list(inputs[0].shape[1:]), list(output.shape[1:]))

        return fn

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _layer(net: nn.Module, name: str, shapes, shown_name: Optional[str] = None) -> Dict[str, Any]:
    module = net.get_submodule(name)
    io_shapes = shapes.get(name)
    out = io_shapes[1] if io_shapes else None
    arithmetic = None
    if io_shapes and len(io_shapes[0]) == 3 and out and len(out) == 3:
        arithmetic = size_arithmetic(module, io_shapes[0][-1], out[-1])
    return {"name": shown_name or name, "spec": _spec(module), "shape": out, "arithmetic": arithmetic}


def _block_layers(net: nn.Module, name: str, block: nn.Module, shapes) -> List[Dict[str, Any]]:
    """The block's main path in forward order: convs and norms as registered, a ReLU after each norm
    but the last, then the addition and the final ReLU."""
    children = [(n, m) for n, m in block.named_children() if n not in ("downsample", "relu", "drop_path")]
    children = [(n, m) for n, m in children if m is not None]
    layers: List[Dict[str, Any]] = []
    norms = [n for n, m in children if "Norm" in type(m).__name__]
    out_shape = shapes.get(name, (None, None))[1]
    for child, _ in children:
        layers.append(_layer(net, f"{name}.{child}", shapes, child))
        if child in norms[:-1]:
            layers.append({"name": "relu", "spec": "ReLU", "shape": layers[-1]["shape"], "arithmetic": None})
    layers.append({"name": "+ shortcut", "spec": "add the shortcut", "shape": out_shape, "arithmetic": None})
    layers.append({"name": "relu", "spec": "ReLU", "shape": out_shape, "arithmetic": None})
    return layers


def _shortcut(net: nn.Module, name: str, block: nn.Module, shapes) -> Dict[str, Any]:
    downsample = getattr(block, "downsample", None)
    if downsample is None:
        return {"kind": "identity", "layers": [], "why": "same size and channels: the input is added as it is"}
    parts = list(downsample.named_children()) or [("", downsample)]
    layers = [_layer(net, f"{name}.downsample" + (f".{n}" if n else ""), shapes, f"downsample.{n}" if n else "downsample")
              for n, _ in parts]  # fmt: skip
    io_shapes = shapes.get(name)
    why = []
    if io_shapes and io_shapes[0][1:] != io_shapes[1][1:]:
        why.append(f"the block halves the size ({io_shapes[0][-1]} → {io_shapes[1][-1]})")
    if io_shapes and io_shapes[0][0] != io_shapes[1][0]:
        why.append(f"the block changes the channels ({io_shapes[0][0]} → {io_shapes[1][0]})")
    return {"kind": "projection", "layers": layers, "why": " and ".join(why) or "configured"}


# ---- receptive field -----------------------------------------------------------------------------


def _grow(rf: Tuple[int, int], module: nn.Module) -> Tuple[int, int]:
    """(receptive field, jump) after ``module`` on the main path."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        f, s = _pair(module.kernel_size)[0], _pair(module.stride)[0]
        d = _pair(getattr(module, "dilation", 1))[0]
        size, jump = rf
        return size + (d * (f - 1)) * jump, jump * s
    return rf


def receptive_fields(net: ResNetBase) -> Dict[str, int]:
    """Receptive field (in input pixels) of one output position after the stem and after each stage,
    along the main path (the widest path: the shortcut never sees further)."""
    rf = (1, 1)
    out = {}
    for m in net.conv1.modules() if isinstance(net.conv1, nn.Sequential) else [net.conv1]:
        rf = _grow(rf, m)
    rf = _grow(rf, net.maxpool)
    out["stem"] = rf[0]
    for name in net.stage_names:
        for block in getattr(net, name):
            for child in block.children():
                if isinstance(child, nn.Conv2d):
                    rf = _grow(rf, child)
        out[name] = rf[0]
    return out


# ---- what each stage sees ------------------------------------------------------------------------


def _tile(channel: torch.Tensor) -> str:
    x = channel.float()
    x = (x - x.min()) / (x.max() - x.min() + 1e-12)
    img = Image.fromarray((x.numpy() * 255).astype(np.uint8), mode="L")
    return _png(img.resize((TILE_SIDE, TILE_SIDE), Image.Resampling.NEAREST))


def stage_maps(net: ResNetBase, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The output of the stem (after the max-pool) and of every stage, for one image."""
    maps = {}
    with torch.no_grad():
        y = net.maxpool(net.forward_stem(x))
        maps["stem"] = y
        for name in net.stage_names:
            y = getattr(net, name)(y)
            maps[name] = y
    return maps


def top_channels(feature: torch.Tensor, count: int = TILES_PER_STAGE) -> List[Dict[str, Any]]:
    """The ``count`` channels with the highest mean activation, as image tiles."""
    means = feature[0].float().mean(dim=(1, 2))
    order = means.argsort(descending=True)[:count]
    return [{"channel": int(c), "mean": round(float(means[c]), 4), "src": _tile(feature[0, c])} for c in order]


def stage_cams(net: ResNetBase, x: torch.Tensor, shown: np.ndarray) -> Dict[str, str]:
    """A Grad-CAM overlay per stage, for the model's top class (each stage as the target layer)."""
    from .cam import grad_cam, overlay

    cams = {}
    for name in net.stage_names:
        heat = grad_cam(net, x, layer=getattr(net, name))[0]
        cams[name] = _jpeg(overlay(shown, heat).resize((CAM_SIDE, CAM_SIDE), Image.Resampling.BILINEAR))
    return cams


# ---- the code beside it --------------------------------------------------------------------------


def _source(obj: Any, package_root: Path) -> Optional[Dict[str, Any]]:
    try:
        lines, start = pyinspect.getsourcelines(obj)
        path = Path(pyinspect.getsourcefile(obj) or "")
    except (OSError, TypeError):
        return None
    try:
        where = str(path.relative_to(package_root.parent))
    except ValueError:
        where = path.name
    return {"file": where, "start": start, "lines": [line.rstrip("\n") for line in lines]}


def code_parts(net: ResNetBase) -> Dict[str, Dict[str, Any]]:
    """The source of each part, from the installed package: the stem, the stage builder (where the
    downsample shortcut is made), each block class and the head."""
    import resnetkit

    root = Path(resnetkit.__file__).parent
    cls = type(net)
    parts: Dict[str, Any] = {}
    candidates = {
        "stem": getattr(cls, "_make_stem", None) or cls.__init__,
        "stage": getattr(cls, "_make_layer", None) or cls.__init__,
        "head": getattr(cls, "forward_head", None),
    }
    for key, obj in candidates.items():
        if obj is not None and (source := _source(obj, root)) is not None:
            parts[key] = source
    for name in net.stage_names:
        for block in getattr(net, name):
            key = f"block:{type(block).__name__}"
            if key not in parts and (source := _source(type(block), root)) is not None:
                parts[key] = source
    return parts


# ---- putting it together -------------------------------------------------------------------------


def _preprocessed(net: ResNetBase, card, image: Image.Image, input_size: Optional[int]) -> Tuple[torch.Tensor, Any]:
    pre = card.preprocess
    if input_size is not None and input_size != pre.crop_size:
        sized = Preprocess.for_input_size(int(input_size))
        pre = dataclasses.replace(sized, interpolation=pre.interpolation, mean=pre.mean, std=pre.std)
    x = pre.transform(net.in_chans)(image)[None]
    return x, pre


def _stages(net: ResNetBase, shapes, summary, fields: Dict[str, int]) -> List[Dict[str, Any]]:
    stages = []
    rows = {row.module: row for row in summary.stages}
    for index, name in enumerate(net.stage_names):
        blocks = []
        for j, block in enumerate(getattr(net, name)):
            bname = f"{name}.{j}"
            blocks.append({
                "name": bname, "type": type(block).__name__, "expansion": getattr(block, "expansion", 1),
                "stride": int(getattr(block, "stride", 1)), "in": shapes.get(bname, (None, None))[0],
                "out": shapes.get(bname, (None, None))[1], "layers": _block_layers(net, bname, block, shapes),
                "shortcut": _shortcut(net, bname, block, shapes),
            })  # fmt: skip
        row = rows[name]
        out_channels = shapes.get(f"{name}.{len(blocks) - 1}", (None, [0]))[1][0]
        expansion = blocks[0]["expansion"] if blocks else 1
        stages.append({
            "planes": out_channels // expansion, "expansion": expansion, "name": name, "paper": row.name, "spec": row.spec, "blocks": blocks, "params": row.params, "macs": row.macs,
            "out": shapes.get(f"{name}.{len(blocks) - 1}", (None, None))[1], "receptive_field": fields.get(name),
            "reduction": int(net.intermediate_info[index + 1]["reduction"]),
        })  # fmt: skip
    return stages


def _stem(net: ResNetBase, shapes) -> List[Dict[str, Any]]:
    names = [f"conv1.{n}" for n, _ in net.conv1.named_children()] if isinstance(net.conv1, nn.Sequential) else ["conv1"]
    layers = [_layer(net, n, shapes) for n in names]
    layers += [_layer(net, "bn1", shapes), _layer(net, "relu", shapes)]
    if not isinstance(net.maxpool, nn.Identity):
        layers.append(_layer(net, "maxpool", shapes))
    return layers


def _features_of(net: ResNetBase) -> Dict[str, Any]:
    """What makes this configuration unusual, shown when present."""
    first = getattr(net, net.stage_names[0])[0]
    out = {"expansion": getattr(first, "expansion", 1), "block": type(first).__name__}
    groups = getattr(net, "groups", 1)
    width = getattr(net, "base_width", 64)
    if groups > 1 or width != 64:
        out["groups_x_width"] = f"{groups}x{width}d" if groups > 1 else f"width per group {width} ({width // 64}x wide)"
    dilations = [max((_pair(m.dilation)[0] for m in getattr(net, s).modules() if isinstance(m, nn.Conv2d)), default=1)
                 for s in net.stage_names]  # fmt: skip
    if max(dilations) > 1:
        out["dilation"] = dilations
    out["output_stride"] = int(net.intermediate_info[-1]["reduction"])
    return out


def _network(model: Any, options: Dict[str, Any]) -> Tuple[ResNetBase, bool, Optional[str]]:
    """(the PyTorch network, whether ``model`` is an exported runner, the page's note about that)."""
    from ..weights.factory import get_model

    if isinstance(model, str):
        return get_model(model, **options).eval(), False, None
    if isinstance(model, ResNetBase):
        return model.eval(), False, None
    card = model.card  # an exported runner: the PyTorch architecture of its card, without weights
    net = get_model(card.arch, num_classes=card.num_classes, in_chans=card.in_chans, **dict(card.model_options))
    net.card = card  # its preprocessing and classes; no weights
    note = (f"{card.source or 'this model'} is an exported model: the shapes come from its PyTorch architecture "
            f"({card.arch}); it has no gradients, so there are no Grad-CAM overlays and no feature maps")  # fmt: skip
    return net.eval(), True, note


def _picture(image: Union[None, str, Path, Image.Image], name: Optional[str]) -> Tuple[Image.Image, str]:
    from ..data.decode import load_image

    if image is None:
        return sample_image()
    if isinstance(image, Image.Image):
        return image.convert("RGB"), name or "the given image"
    return load_image(image, None), name or Path(image).name


def _trace(net: ResNetBase, x: torch.Tensor):
    """One forward pass on this image: the shapes of every module, the stem's and each stage's output,
    and the logits (None for a backbone)."""
    tracer = Tracer(net)
    try:
        maps = stage_maps(net, x)
        with torch.no_grad():
            logits = net.forward_head(maps[net.stage_names[-1]]) if net.num_classes > 0 else None
    finally:
        tracer.close()
    return tracer.shapes, maps, logits


def _top(logits: Optional[torch.Tensor], card) -> List[Dict[str, Any]]:
    if logits is None:
        return []
    probs = logits.float().softmax(1)[0]
    names = list(card.classes) if card.classes else None
    return [{"class": names[int(i)] if names else str(int(i)), "index": int(i), "p": round(float(p), 4)}
            for p, i in zip(*probs.topk(min(5, len(probs))))]  # fmt: skip


def _cams(net: ResNetBase, x: torch.Tensor, shown: np.ndarray, trained: bool) -> Tuple[Dict[str, str], Optional[str]]:
    """(Grad-CAM overlay per stage, or the reason there are none)."""
    if net.num_classes == 0:
        return {}, "no Grad-CAM: the model is a backbone without a classifier"
    if not trained:
        return {}, "no Grad-CAM: the model has random weights (pass --weights for a trained one)"
    try:
        return stage_cams(net, x, shown), None
    except ImportError:
        return {}, "no Grad-CAM: install the grad-cam package (pip install 'resnetkit[serve]')"
    except Exception as exc:  # a model Grad-CAM cannot hook: the rest of the page still stands
        return {}, f"no Grad-CAM for this model ({type(exc).__name__}: {exc})"


def explain_data(
    model: Union[str, nn.Module, Any],
    image: Union[None, str, Path, Image.Image] = None,
    input_size: Optional[int] = None,
    image_name: Optional[str] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Every fact the page shows, as JSON-ready data (see ``explain``)."""
    from .cam import shown_image

    net, exported, note = _network(model, options)
    card = net.card
    picture, image_name = _picture(image, image_name)
    x, pre = _preprocessed(net, card, picture, input_size)
    side = int(x.shape[-1])
    shapes, maps, logits = _trace(net, x)
    summary = summarize(net, (side, side), arch=net.arch or "custom")
    fields = receptive_fields(net)
    shown = shown_image(x[0], pre.mean, pre.std)
    trained = bool(card.source) and not exported
    maps = {} if exported else maps  # an exported model's architecture has no trained weights to show
    cams, cam_note = ({}, note) if exported else _cams(net, x, shown, trained)
    stages = _stages(net, shapes, summary, fields)
    for stage in stages:
        stage["tiles"] = top_channels(maps[stage["name"]]) if stage["name"] in maps else []
        stage["cam"] = cams.get(stage["name"])
    stem_rows = [row for row in summary.stages if row.module in ("conv1", "maxpool")]
    head = summary.stages[-1]
    stem_out = shapes.get("maxpool", shapes.get("relu", (None, None)))[1]
    return {
        "arch": net.arch or type(net).__name__,
        "source": card.source or "random weights (no --weights given)",
        "exported": exported,
        "note": note,
        "cam_note": cam_note,
        "image": {
            "name": image_name,
            "src": _jpeg(Image.fromarray((shown * 255).astype(np.uint8))),
            "size": list(picture.size),
        },
        "input": [int(v) for v in x.shape[1:]],
        "preprocess": {"resize": pre.resize_size, "crop": pre.crop_size, "interpolation": pre.interpolation},
        "top": _top(logits, card) if trained else [],
        "features": _features_of(net),
        "stem": {
            "layers": _stem(net, shapes),
            "out": stem_out,
            "params": sum(r.params for r in stem_rows),
            "macs": sum(r.macs for r in stem_rows),
            "receptive_field": fields["stem"],
            "tiles": top_channels(maps["stem"]) if "stem" in maps else [],
            "reduction": side // stem_out[-1] if stem_out else None,
        },  # fmt: skip
        "stages": stages,
        "head": {
            "spec": head.spec,
            "params": head.params,
            "macs": head.macs,
            "classes": net.num_classes,
            "layers": ([_layer(net, "avgpool", shapes)] + ([_layer(net, "fc", shapes)] if net.num_classes else [])),
        },  # fmt: skip
        "totals": {"params": summary.total_params, "macs": summary.total_macs},
        "code": code_parts(net),
    }


def policy(nonce: str) -> str:
    """The page's Content-Security-Policy: its own nonce'd script and style, images from data: URIs,
    nothing from any network."""
    return (
        f"default-src 'none'; img-src data:; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "base-uri 'none'; form-action 'none'"
    )


def render(data: Dict[str, Any], nonce: Optional[str] = None) -> str:
    """The page for ``explain_data``'s facts (the facts travel as JSON data, never as markup)."""
    nonce = nonce or secrets.token_urlsafe(16)
    page = PAGE.read_text(encoding="utf-8").replace("{{POLICY}}", policy(nonce)).replace("{{NONCE}}", nonce)
    return page.replace("{{DATA}}", script_json(data))


def explain(
    model: Union[str, nn.Module, Any],
    image: Union[None, str, Path, Image.Image] = None,
    input_size: Optional[int] = None,
    image_name: Optional[str] = None,
    **options: Any,
) -> str:
    """The explain page of ``model`` as one self-contained HTML document.

    Args:
        model: an architecture name (``"resnet50"``, built with random weights and ``options``), a
            resnetkit model (its weights, classes and preprocessing are used), or an exported
            inference model (its PyTorch architecture gives the shapes; no Grad-CAM).
        image: the image to walk through the network (a path or a PIL image); default: a real
            photo that ships with scikit-learn.
        input_size: the crop side the image is resized to (default: the model's preprocessing).
        image_name: how the page names the image (default: its file name).
        **options: build options for an architecture name (``replace_stride_with_dilation``, ...).

    Returns:
        The HTML text: no network access, no external file; open it from disk.

    Examples:
        >>> import resnetkit as rk
        >>> html = rk.explain("resnet18", input_size=64)
        >>> "layer4" in html
        True
    """
    return render(explain_data(model, image=image, input_size=input_size, image_name=image_name, **options))


def repr_html(model: ResNetBase) -> str:
    """A static summary table for notebooks (``_repr_html_``): stages, output sizes, parameters, MACs."""
    import html

    side = int(getattr(model, "default_input_size", 224))
    summary = summarize(model, (side, side), arch=model.arch or type(model).__name__)
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{html.escape('x'.join(map(str, r.output_size)) or '-')}</td>"
        f"<td>{html.escape(r.spec)}</td><td style='text-align:right'>{r.params:,}</td>"
        f"<td style='text-align:right'>{r.macs / 1e6:,.1f} M</td></tr>"
        for r in summary.stages
    )
    title = html.escape(
        f"{summary.arch}: {summary.total_params:,} parameters, {summary.gmacs:.2f} GMACs at {side}x{side}"
    )
    source = html.escape(model.card.source or "random weights")
    return (
        f"<div><b>{title}</b> <small>({source}; resnetkit.explain(model) for the full page)</small>"
        "<table><thead><tr><th>stage</th><th>output</th><th>layers</th><th>params</th><th>MACs</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
