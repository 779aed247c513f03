"""Reading and writing weight files: safetensors natively, torch files with ``weights_only=True``,
always atomically, and with the format told by the content rather than the file name."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import torch

from ..card import ModelCard
from ..errors import BadFile, DamagedModel
from ..fileio import PathLike, check_readable_file, load_torch, write_bytes

StateDict = Dict[str, torch.Tensor]


class ResnetkitWarning(UserWarning):
    """Something the user should know about weights that still load (the CLI prints it as one line)."""


def sniff_format(path: PathLike) -> str:
    """'safetensors', 'torch' (zip or legacy pickle), 'html', 'text' or 'unknown', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 2 <= n < 100_000_000:
            return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    lower = head.lstrip().lower()
    if lower.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return "html"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "unknown"


def tensor_digest(state: StateDict) -> str:
    """sha256 of a state_dict's names, dtypes, shapes and bytes (in name order): what a weights file
    holds, whatever the file's layout, so damage to the file after it was written is detected."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_tensors(state: StateDict, where: str) -> None:
    """DamagedModel naming the first floating-point tensor that holds NaN or Inf: such weights load
    and answer every image with NaN (or with confidence, after a softmax of Infs)."""
    for name, t in state.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise DamagedModel(
                f"{where}: tensor {name} holds {bad:,} non-finite values (NaN or Inf); these weights cannot give "
                "meaningful outputs: use a good checkpoint (e.g. best.pt of the run) or download them again"
            )


def save_safetensors(state_dict: StateDict, path: PathLike, metadata: Optional[Union[dict, ModelCard]] = None) -> None:
    """Write a state_dict as safetensors, atomically (a reader sees the old file or the new one).

    Args:
        state_dict: the tensors.
        path: the file to write.
        metadata: a ModelCard (recorded with a hash of the tensors, checked when the file is read
            back) or a plain dict (values that are not strings are stored as JSON).

    Returns:
        None.

    Raises:
        BadFile: the path cannot be written (DiskFull when the disk is full; the old file is kept).

    Examples:
        >>> import tempfile, resnetkit as rk
        >>> path = tempfile.mkdtemp() + "/w.safetensors"
        >>> rk.save_safetensors(rk.resnet18(num_classes=3).state_dict(), path, {"arch": "resnet18"})
        >>> rk.load_safetensors(path)[1]["arch"]
        'resnet18'
    """
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if isinstance(metadata, ModelCard):
        meta = metadata.but(weights_sha256=tensor_digest(tensors)).to_metadata()
        meta["format"] = "pt"  # the safetensors convention for PyTorch files
    else:
        meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    # Serialised in memory and written by Python: safetensors' own writer reports a full disk as a
    # SafetensorError, and write_bytes makes it DiskFull naming the file.
    write_bytes(path, save(tensors, metadata=meta), "safetensors file")


def load_safetensors(path: PathLike) -> Tuple[StateDict, dict]:
    """Read a safetensors file.

    Args:
        path: the file.

    Returns:
        (state_dict, metadata): the tensors, and the metadata with JSON-encoded values decoded.

    Raises:
        BadFile: missing, unreadable or not a safetensors file (DamagedModel: a tensor hash mismatch).

    Examples:
        >>> import resnetkit as rk
        >>> state, meta = rk.load_safetensors("runs/digits/model.safetensors")  # doctest: +SKIP
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = check_readable_file(path, "weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, ValueError) as exc:
        raise BadFile(f"{path}: not a valid safetensors file ({exc})") from None
    except OSError as exc:
        raise BadFile(f"{path}: cannot be read ({exc.strerror or exc})") from None
    meta = ModelCard.decode_metadata(raw)
    recorded = meta.get("weights_sha256")
    if isinstance(recorded, str) and recorded != tensor_digest(tensors):
        raise DamagedModel(
            f"{path}: its tensors do not match the hash recorded when it was written (the file was damaged "
            "after it was saved); use another copy, or the run's best.pt / last.pt"
        )
    return tensors, meta


def _not_weights(path: Path, kind: str) -> BadFile:
    if kind == "html":
        return BadFile(f"{path}: an HTML page, not a weights file (an error or login page saved in its place?)")
    if kind == "text":
        return BadFile(f"{path}: a text file, not a weights file (.safetensors or a torch.save file)")
    return BadFile(f"{path}: not a weights file (neither safetensors nor a torch.save file)")


def read_weights_file(path: PathLike, config: Optional[PathLike] = None) -> Tuple[StateDict, dict]:
    """(state_dict, metadata) from a .safetensors file or a torch checkpoint (.pt/.pth).

    A training checkpoint (a dict with a ``model`` entry) gives its model weights and its saved
    metadata; DDP's ``module.`` and wrappers' ``model.`` prefixes are stripped; a Hugging Face
    transformers ResNet checkpoint is renamed to resnetkit's keys and its ``config.json`` (given,
    or found beside the file) is checked.
    """
    path = check_readable_file(path, "weights file")
    kind = sniff_format(path)
    if kind == "safetensors":
        state, meta = load_safetensors(path)
    elif kind == "torch":
        obj = load_torch(path)
        meta = {}
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            # The card as JSON values (to_dict) or as a string map (to_metadata, what resnetkit 0.3's
            # trainer wrote): decoding the strings reads both.
            raw_meta = obj.get("meta") or {}
            if not isinstance(raw_meta, dict):
                raise BadFile(f"{path}: its 'meta' entry is not a mapping of the model card's fields")
            meta = ModelCard.decode_metadata(raw_meta)
            obj = obj["model"]
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise BadFile(f"{path}: does not contain a state_dict (a mapping of names to tensors)")
        state = obj
    else:
        raise _not_weights(path, kind)
    state = strip_prefixes(state)
    from .hf import PREPROCESSOR_FILE, from_hf_transformers, interpret_config, interpret_preprocessor, is_hf_resnet

    if is_hf_resnet(state):  # a Hugging Face transformers ResNet: rename to our keys, check its config
        state = from_hf_transformers(state)
        meta.setdefault("source_format", "transformers")
        config_path = Path(config) if config is not None else path.parent / "config.json"
        if config_path.is_file():
            try:
                hf_config = json.loads(check_readable_file(config_path, "config").read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadFile(f"{config_path}: not valid JSON ({exc})") from None
            meta.update(interpret_config(hf_config, str(path)))
            if "fc.weight" not in state:  # a transformers model without its classifier
                meta.pop("num_classes", None)
                meta.pop("classes", None)
            processor = config_path.parent / PREPROCESSOR_FILE
            if processor.is_file():  # the pixels transformers' pipeline feeds it
                try:
                    processor_config = json.loads(check_readable_file(processor, "config").read_text())
                except (ValueError, UnicodeDecodeError) as exc:
                    raise BadFile(f"{processor}: not valid JSON ({exc})") from None
                meta["preprocess"] = interpret_preprocessor(processor_config, str(path))
        elif config is not None:
            raise BadFile(f"config {config_path}: no such file")
        else:
            warnings.warn(
                f"{path}: a Hugging Face transformers checkpoint without its config.json: its architecture options "
                "(downsample_in_bottleneck, downsample_in_first_stage, hidden_act) were not checked; keep config.json "
                "beside the file (a save_pretrained folder) to have them checked",
                ResnetkitWarning,
                stacklevel=2,
            )
    check_tensors(state, str(path))
    return state, meta


def read_cached(fetch: Callable[[], Path], config: Optional[PathLike] = None) -> Tuple[StateDict, dict]:
    """Read a file that ``fetch()`` puts in the cache. A cached file that no longer reads (damaged
    on disk, or left by an older version) is removed with a warning and fetched once more, so the
    cache never keeps a bad file."""
    path = fetch()
    try:
        return read_weights_file(path, config=config)
    except BadFile as exc:
        warnings.warn(
            f"the cached file {path} cannot be read ({exc}); it was removed and is fetched again",
            ResnetkitWarning,
            stacklevel=2,
        )
        path.unlink(missing_ok=True)
        return read_weights_file(fetch(), config=config)


def strip_prefixes(state: StateDict) -> StateDict:
    """Remove ``module.`` (DDP), ``model.`` and ``_orig_mod.`` (torch.compile) prefixes shared by all keys."""
    changed = True
    while changed and state:
        changed = False
        for prefix in ("module.", "model.", "_orig_mod."):
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def validate_weights_file(path: PathLike) -> None:
    """Raise BadFile unless ``path`` parses as a weights file (used before anything enters the cache)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResnetkitWarning)
        read_weights_file(path)
