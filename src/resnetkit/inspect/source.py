"""The source of resnetkit that builds each part of a network, read from the installed package (the
code that ran), for the explain page: the stem, the stage builder (where the shortcut is made), each
block class and the head."""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path
from typing import Any, Dict, Optional

from ..models import ResNetBase

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../resnetkit: found without importing the package's face


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
    root = PACKAGE_ROOT
    parts: Dict[str, Any] = {}
    for key, obj in _builders(net).items():
        if obj is not None and (source := _source(obj, root)) is not None:
            parts[key] = source
    for name in net.stage_names:
        for _, block in net.stage_blocks(name):
            key = f"block:{type(block).__name__}"
            if key not in parts and (source := _source(type(block), root)) is not None:
                parts[key] = source
    return parts


def _builders(net: ResNetBase) -> Dict[str, Any]:
    """The functions that build the stem, a stage and the head of ``net``'s class."""
    from ..models import ResNet, ResNetV2
    from ..models import resnetv2 as v2
    from ..models.stems import build_stem

    cls = type(net)
    if isinstance(net, ResNetV2):
        return {"stem": v2._stem, "stage": v2._stage, "head": v2.ClassifierHead.forward}
    if isinstance(net, ResNet):
        return {"stem": build_stem, "stage": ResNet._make_layer, "head": cls.forward_head}
    return {"stem": cls.__init__, "stage": cls.__init__, "head": cls.forward_head}
