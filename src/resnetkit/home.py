"""Where resnetkit keeps what it can rebuild: ``$RESNETKIT_HOME`` if set, else
``$XDG_CACHE_HOME/resnetkit`` (``~/.cache/resnetkit``). optimize()'s remembered choices
(``optimize.json``), optimized models (``optimized/``) and OpenVINO's compiled blobs (``openvino/``)
live there; all of it can be deleted at any time (``resnetkit cache prune``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """The folder (it may not exist yet)."""
    home = os.environ.get("RESNETKIT_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnetkit"
