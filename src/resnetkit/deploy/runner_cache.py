"""The cache of optimized models: a runner that took seconds to build (converted to ONNX or OpenVINO,
quantized to int8, preprocessing fused in) is kept on disk, so the next job with the same model starts
at once.

An entry lives in ``cache_home()/optimized/KEY/``: the runtime's files (``model.xml`` + ``model.bin``,
or ``model.onnx``) and ``entry.json`` (what it is, when it was made and last used, each file's sha256).
The key is a hash of everything that determines the runner: the model's structure and every tensor
(weights, and the fused preprocessing's statistics), the calibration set (int8), the precision, the
backend, the input size and the versions of torch and the runtime. An entry is written into a
temporary folder and renamed into place (a reader sees a whole entry or none; two writers of the same
entry keep one), verified against its hashes when read (a damaged entry is removed and rebuilt, never
used), and may be deleted at any time: ``resnetkit cache list|prune``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from ..home import cache_home
from ..targets import RUNTIME_ROWS

if TYPE_CHECKING:  # `resnetkit cache list` reads the entries without torch
    from torch import nn

ENTRY = "entry.json"
STALE_TEMPORARY_S = 3600  # a temporary entry folder this old belongs to no live writer
ENV_OFF = "RESNETKIT_NO_MODEL_CACHE"  # "1": never read or write the cache (a measurement from scratch)


def root() -> Path:
    return cache_home() / "optimized"


def blob_cache() -> Path:
    """OpenVINO's compiled-blob cache (its CACHE_DIR)."""
    return cache_home() / "openvino"


def enabled() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("1", "true", "yes", "on")


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", *(p for r in RUNTIME_ROWS if r.keeps for p in r.version_packages)):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def tensor_identity(model: nn.Module) -> str:
    """sha256 of every tensor a model computes with (parameters and all buffers, persistent or not)."""
    import torch

    h = hashlib.sha256()
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, t in sorted(tensors, key=lambda kv: kv[0]):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def calibration_identity(batches) -> str:
    import torch

    h = hashlib.sha256()
    for b in batches or []:
        b = b.detach().cpu().contiguous()
        h.update(f"{b.dtype}|{tuple(b.shape)}|".encode())
        h.update(b.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def key(model: nn.Module, backend: str, precision: str, input_size: int, calibration: Optional[str]) -> str:
    facts = {
        "structure": hashlib.sha256(repr(model).encode()).hexdigest(),
        "tensors": tensor_identity(model),
        "backend": backend,
        "precision": precision,
        "input_size": int(input_size),
        "calibration": calibration,
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Entry:
    key: str
    folder: Path
    facts: dict
    size_bytes: int  # its files, when it was listed


def entries() -> List[Entry]:
    """Every readable entry, most recently used first."""
    found = []
    base = root()
    if not base.is_dir():
        return []
    for folder in base.iterdir():
        try:
            facts = json.loads((folder / ENTRY).read_text())
        except (OSError, ValueError):
            continue
        found.append(Entry(folder.name, folder, facts if isinstance(facts, dict) else {}, folder_bytes(folder)))
    return sorted(found, key=lambda e: -float(e.facts.get("used", 0)))


def get(entry_key: str, load: Callable[..., nn.Module], precision: str) -> Optional[nn.Module]:
    """The runner kept under ``entry_key``, verified; None when there is none (or it was damaged:
    then it is removed, and the caller builds it again)."""
    if not enabled():
        return None
    folder = root() / entry_key
    try:
        facts = json.loads((folder / ENTRY).read_text())
        for name, digest in facts["files"].items():
            if _sha256(folder / name) != digest:
                raise ValueError(f"{name} does not match its hash")
        runner = load(folder, precision, blob_cache())
    except FileNotFoundError:
        return None
    except Exception:  # damaged, cut short, or written by another version: rebuilt, never used
        shutil.rmtree(folder, ignore_errors=True)
        return None
    facts["used"] = time.time()
    with contextlib.suppress(OSError):
        _write_json(folder / ENTRY, facts)
    return runner


def put(entry_key: str, runner: nn.Module, save: Callable[[nn.Module, Path], List[str]], facts: dict) -> None:
    """Keep ``runner`` under ``entry_key``. Best effort: a full disk or an unwritable cache only costs
    a rebuild next time."""
    if not enabled():
        return
    base = root()
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry_key}.", dir=base))
    except OSError:
        return
    try:
        files = save(runner, tmp)
        now = time.time()
        record = dict(facts, files={name: _sha256(tmp / name) for name in files}, created=now, used=now)
        _write_json(tmp / ENTRY, record)
        os.replace(tmp, base / entry_key)  # atomic; if another writer got there first, this replaces it whole
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def prune(older_than_days: Optional[float] = None, keep_bytes: Optional[int] = None) -> List[Entry]:
    """Remove entries not used for ``older_than_days``, then the least recently used beyond
    ``keep_bytes``; with neither, everything (and OpenVINO's blobs). The entries removed."""
    removed: List[Entry] = []
    now, total = time.time(), 0
    for entry in entries():  # most recently used first
        size = entry.size_bytes
        stale = older_than_days is not None and now - float(entry.facts.get("used", 0)) > older_than_days * 86400
        over = keep_bytes is not None and total + size > keep_bytes
        if (older_than_days is None and keep_bytes is None) or stale or over:
            shutil.rmtree(entry.folder, ignore_errors=True)
            removed.append(entry)
        else:
            total += size
    listed = {e.key for e in entries()}
    for folder in root().iterdir() if root().is_dir() else ():
        # a writer killed mid-entry left its temporary folder; a damaged entry is never read
        if folder.name in listed:
            continue
        with contextlib.suppress(OSError):
            if (older_than_days is None and keep_bytes is None) or now - folder.stat().st_mtime > STALE_TEMPORARY_S:
                shutil.rmtree(folder, ignore_errors=True)
    if older_than_days is None and keep_bytes is None:
        shutil.rmtree(blob_cache(), ignore_errors=True)
    elif older_than_days is not None:  # OpenVINO's blobs: by age (OpenVINO reads them; they are not touched)
        for path in blob_cache().glob("*") if blob_cache().is_dir() else ():
            with contextlib.suppress(OSError):
                if path.is_file() and now - path.stat().st_mtime > older_than_days * 86400:
                    path.unlink()
    return removed


def folder_bytes(folder: Path) -> int:
    """The size of every file under ``folder`` (0 when there is none)."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total
