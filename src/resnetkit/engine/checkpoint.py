"""Training checkpoints: everything needed to continue a run bit for bit, loaded with weights_only."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..errors import BadFile
from ..fileio import load_torch, save_torch

FORMAT = "resnetkit-checkpoint-1"


def rng_state() -> Dict[str, Any]:
    np_state: Any = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "numpy": {
            "keys": np_state[1].tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    n = state["numpy"]
    np.random.set_state(("MT19937", np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, **parts: Any) -> None:
    """Write a checkpoint atomically (temp file, fsync, rename): a crash leaves the previous one intact."""
    save_torch({"format": FORMAT, "rng": rng_state(), **parts}, path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """A checkpoint ``save_checkpoint`` wrote; anything else (weights, an export, a damaged file) is
    refused in one line saying what --resume takes."""
    try:
        ckpt = load_torch(path)
    except BadFile as exc:
        raise BadFile(
            f"{path} is not a resnetkit training checkpoint ({str(exc).split(': ', 1)[-1]}); --resume takes a run "
            "directory (or its last.pt / best.pt)"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise BadFile(
            f"{path}: not a resnetkit training checkpoint; --resume takes a run directory (or its last.pt / best.pt)"
        )
    return ckpt
