"""Safe reading and writing of weight files: never full unpickling, always atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import torch

from ..errors import ResnetkitError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place, so
    readers only ever see the old complete file or the new complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_torch(obj, path: PathLike) -> None:
    """torch.save, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: PathLike, map_location="cpu"):
    """torch.load with ``weights_only=True``: tensors and plain containers only, so a file that
    tries to run code on unpickling is refused instead of executed."""
    path = Path(path)
    if not path.is_file():
        raise ResnetkitError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # The rejected callable is named as "GLOBAL posix.system" or "Unsupported global: GLOBAL x.y".
        detail = re.search(r"GLOBAL ([\w.]+)", text)
        if detail or "global" in text.lower():
            what = detail.group(1) if detail else "a Python object"
            raise ResnetkitError(
                f"{path}: refused to load: the file asks to call {what}, which could run code "
                "(loading uses weights_only=True); only tensors are accepted: re-save the state_dict alone"
            ) from None
        raise ResnetkitError(f"{path}: not a readable PyTorch checkpoint (corrupt or not a torch.save file)") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ResnetkitError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None


def save_safetensors(state_dict: Dict[str, torch.Tensor], path: PathLike, metadata: Optional[dict] = None) -> None:
    """Write a state_dict as safetensors; metadata values that are not strings are stored as JSON."""
    from safetensors.torch import save_file

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_safetensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) of a safetensors file; JSON-encoded metadata values are decoded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ResnetkitError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ResnetkitError(f"{path}: not a valid safetensors file ({exc})") from None
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except (TypeError, ValueError):
            meta[k] = v
    return tensors, meta


def read_weights_file(path: PathLike) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) from a .safetensors file or a torch checkpoint (.pt/.pth).

    A training checkpoint (a dict with a ``model`` entry) gives its model weights and its saved
    metadata; DDP's ``module.`` and wrappers' ``model.`` prefixes are stripped; a Hugging Face
    transformers ResNet checkpoint is renamed to resnetkit's keys.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state, meta = load_safetensors(path)
    else:
        obj = load_torch(path)
        meta = {}
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            meta = dict(obj.get("meta") or {})
            obj = obj["model"]
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ResnetkitError(f"{path}: does not contain a state_dict (a mapping of names to tensors)")
        state = obj
    from .convert import from_hf_transformers, is_hf_resnet

    if is_hf_resnet(state):  # a Hugging Face transformers ResNet: rename to our keys
        state = from_hf_transformers(state)
        meta.setdefault("source_format", "transformers")
    return strip_prefixes(state), meta


def strip_prefixes(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove ``module.`` (DDP), ``model.`` and ``_orig_mod.`` (torch.compile) prefixes shared by all keys."""
    changed = True
    while changed and state:
        changed = False
        for prefix in ("module.", "model.", "_orig_mod."):
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state
