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
import secrets
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..card import Preprocess
from ..errors import InvalidOption
from ..models import ResNetBase
from ..web import script_json
from .source import code_parts
from .summary import summarize
from .tiles import jpeg_uri, stage_cams, stage_maps, top_channels
from .trace import Tracer, layer_spec, pair, projection_why, receptive_fields, size_arithmetic

PAGE = Path(__file__).with_name("explain.html")


# ---- the image ------------------------------------------------------------------------------------


def sample_image() -> Tuple[Image.Image, str]:
    """A real photo that ships with scikit-learn (a dependency): ``flower.jpg``, 640x427."""
    import sklearn.datasets

    path = Path(sklearn.datasets.__file__).with_name("images") / "flower.jpg"
    return Image.open(path).convert("RGB"), "flower.jpg (scikit-learn's sample photo)"


# ---- shapes and size arithmetic ------------------------------------------------------------------


def _layer(net: nn.Module, name: str, shapes, shown_name: Optional[str] = None) -> Dict[str, Any]:
    module = net.get_submodule(name)
    io_shapes = shapes.get(name)
    out = io_shapes[1] if io_shapes else None
    arithmetic = None
    if io_shapes and len(io_shapes[0]) == 3 and out and len(out) == 3:
        arithmetic = size_arithmetic(module, io_shapes[0][-1], out[-1])
    return {"name": shown_name or name, "spec": layer_spec(module), "shape": out, "arithmetic": arithmetic}


def _block_layers(net: nn.Module, name: str, block: nn.Module, shapes) -> List[Dict[str, Any]]:
    """The block's main path in forward order. Post-activation (ResNet): convs and norms as
    registered, a ReLU after each norm but the last, the addition, then a ReLU. Pre-activation
    (ResNetV2): norm-act before each conv, then the addition, with no ReLU after it."""
    children = [(n, m) for n, m in block.named_children() if n not in ("downsample", "relu", "drop_path")]
    children = [(n, m) for n, m in children if m is not None]
    layers: List[Dict[str, Any]] = []
    out_shape = shapes.get(name, (None, None))[1]
    if getattr(block, "preact", False):
        for child, _ in children:
            layers.append(_layer(net, f"{name}.{child}", shapes, child))
            if child.startswith("norm"):
                layers[-1]["spec"] += " + ReLU (pre-activation)"
        layers.append({"name": "+ shortcut", "spec": "add the shortcut (no ReLU after it)", "shape": out_shape,
                       "arithmetic": None})  # fmt: skip
        return layers
    norms = [n for n, m in children if "Norm" in type(m).__name__]
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
    parts = [(n, m) for n, m in downsample.named_children() if not isinstance(m, nn.Identity)] or [("", downsample)]
    layers = [_layer(net, f"{name}.downsample" + (f".{n}" if n else ""), shapes, f"downsample.{n}" if n else "downsample")
              for n, _ in parts]  # fmt: skip
    io_shapes = shapes.get(name, (None, None))
    why = " and ".join(text for _, text in projection_why(*io_shapes)) or "configured"
    if getattr(block, "preact", False):
        why += "; it projects the block's normalised input (after norm1), as pre-activation blocks do"
    return {"kind": "projection", "layers": layers, "why": why}


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
        for bname, block in net.stage_blocks(name):
            blocks.append({
                "name": bname, "type": type(block).__name__, "expansion": getattr(block, "expansion", 1),
                "stride": int(getattr(block, "stride", 1)), "in": shapes.get(bname, (None, None))[0],
                "out": shapes.get(bname, (None, None))[1], "layers": _block_layers(net, bname, block, shapes),
                "shortcut": _shortcut(net, bname, block, shapes),
            })  # fmt: skip
        row = rows[name]
        last = blocks[-1]["name"] if blocks else name
        out_channels = shapes.get(last, (None, [0]))[1][0]
        expansion = blocks[0]["expansion"] if blocks else 1
        stages.append({
            "planes": out_channels // expansion, "expansion": expansion, "name": name, "paper": row.name, "spec": row.spec, "blocks": blocks, "params": row.params, "macs": row.macs,
            "out": shapes.get(last, (None, None))[1], "receptive_field": fields.get(name),
            "reduction": int(net.intermediate_info[index + 1]["reduction"]),
        })  # fmt: skip
    return stages


def _stem(net: ResNetBase, shapes) -> List[Dict[str, Any]]:
    """The stem's layers in order (a Sequential's children one by one)."""
    layers = []
    for name, module in net.stem_modules():
        if isinstance(module, nn.Identity):
            continue
        parts = [f"{name}.{n}" for n, _ in module.named_children()] if isinstance(module, nn.Sequential) else [name]
        layers += [_layer(net, part, shapes) for part in parts if not isinstance(net.get_submodule(part), nn.Identity)]
    return layers


def _head_layers(net: ResNetBase, shapes) -> List[Dict[str, Any]]:
    pool = "avgpool" if hasattr(net, "avgpool") else "head.global_pool"
    return [_layer(net, pool, shapes)] + ([_layer(net, net.classifier_name, shapes)] if net.num_classes else [])


def _features_of(net: ResNetBase) -> Dict[str, Any]:
    """What makes this configuration unusual, shown when present."""
    first = net.stage_blocks(net.stage_names[0])[0][1]
    out = {"expansion": getattr(first, "expansion", 1), "block": type(first).__name__}
    groups = getattr(net, "groups", 1)
    width = getattr(net, "base_width", 64)
    if groups > 1 or width != 64:
        out["groups_x_width"] = f"{groups}x{width}d" if groups > 1 else f"width per group {width} ({width // 64}x wide)"
    dilations = [max((pair(m.dilation)[0] for m in net.stage(s).modules() if isinstance(m, nn.Conv2d)), default=1)
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
    if not card.arch:
        raise InvalidOption(
            f"{card.source or 'this exported model'} names no architecture in its metadata, so there is nothing to "
            "draw: explain the weights it was exported from, or give the architecture (--arch)",
            field="arch",
        )
    net = get_model(card.arch, num_classes=card.num_classes, in_chans=card.in_chans, **dict(card.model_options))
    net.card = card  # its preprocessing and classes; no weights
    note = (f"{card.source or 'this model'} is an exported model: the shapes come from its PyTorch architecture "
            f"({card.arch}); it has no gradients, so there are no Grad-CAM overlays and no feature maps")  # fmt: skip
    return net.eval(), True, note


def _picture(
    image: Union[None, str, Path, Image.Image], name: Optional[str], short_side: int
) -> Tuple[Image.Image, str]:
    """The image and its name; one whose resize would be huge (an extreme aspect ratio) is refused."""
    from ..data.decode import check_resized_size, load_image

    if image is None:
        return sample_image()
    if isinstance(image, Image.Image):
        check_resized_size(name or "the given image", image.width, image.height, short_side)
        return image.convert("RGB"), name or "the given image"
    return load_image(image, short_side), name or Path(image).name


def _trace(net: ResNetBase, x: torch.Tensor):
    """One forward pass on this image: the shapes of every module, the stem's and each stage's output,
    and the logits (None for a backbone)."""
    tracer = Tracer(net)
    try:
        maps = stage_maps(net, x)
        with torch.no_grad():
            logits = net.forward_head(net.final_norm(maps[net.stage_names[-1]])) if net.num_classes > 0 else None
    finally:
        tracer.close()
    return tracer.shapes, maps, logits


def _top(logits: Optional[torch.Tensor], card) -> List[Dict[str, Any]]:
    if logits is None:
        return []
    # A multi-label model's classes are independent decisions: a sigmoid each, not a softmax over them.
    probs = (logits.float().sigmoid() if getattr(card, "multilabel", False) else logits.float().softmax(1))[0]
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
    short_side = (
        card.preprocess.resize_size if input_size is None else Preprocess.for_input_size(input_size).resize_size
    )
    picture, image_name = _picture(image, image_name, short_side)
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
    stem_rows = [row for row in summary.stages if row.name in ("conv1", "pool")]
    head = summary.stages[-1]
    stem_out = shapes.get(net.stem_modules()[-1][0], (None, None))[1]
    return {
        "arch": net.arch or type(net).__name__,
        "source": card.source or "random weights (no --weights given)",
        "exported": exported,
        "note": note,
        "cam_note": cam_note,
        "image": {
            "name": image_name,
            "src": jpeg_uri(Image.fromarray((shown * 255).astype(np.uint8))),
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
            "layers": _head_layers(net, shapes),
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
