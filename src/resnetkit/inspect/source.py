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
