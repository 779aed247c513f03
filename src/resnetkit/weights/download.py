"""Verified, cached, concurrent-safe downloads of weight files.

A file lands in the cache only after its sha256 matches: it is streamed to a temporary name
beside the destination and renamed when verified. A cross-process lock makes parallel callers
(DDP ranks, parallel jobs) share one transfer.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from filelock import FileLock
from tqdm import tqdm

from ..errors import ResnetkitError

CHUNK = 1 << 20
RETRIES = 3  # attempts after the first, for transient failures only
BACKOFF_S = 0.5  # doubled after each failed attempt
TIMEOUT_S = 30.0
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")


class DownloadError(ResnetkitError):
    """A transfer failed or produced a file whose hash does not match."""


class OfflineError(ResnetkitError):
    """The network is unreachable, or RESNETKIT_OFFLINE=1."""


def cache_dir() -> Path:
    """``$RESNETKIT_HOME`` if set, else torch hub's checkpoints directory (``$TORCH_HOME/hub/checkpoints``,
    by default ``~/.cache/torch/hub/checkpoints``), where torchvision keeps the same files."""
    home = os.environ.get("RESNETKIT_HOME")
    if home:
        return Path(home).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_offline() -> bool:
    return os.environ.get("RESNETKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _offline_message(url: str, dest: Path, why: str) -> str:
    return f"cannot download {url} ({why}); place the file by hand at {dest} and run again"


def _is_no_route(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return True  # DNS failure
    if isinstance(reason, OSError) and reason.errno in (101, 113, 65):  # ENETUNREACH, EHOSTUNREACH, macOS
        return True
    return False


def _transfer(url: str, tmp: Path, progress: bool, desc: str) -> tuple:
    """Stream ``url`` into ``tmp``; return (sha256 hex, bytes received, bytes announced or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": "resnetkit"})
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except http.client.IncompleteRead as exc:
                    received += len(exc.partial)
                    block = b""
                if not block:
                    break
                out.write(block)
                h.update(block)
                received += len(block)
                bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest(), received, total


def download(url: str, dest: Path, sha256_prefix: Optional[str] = None, progress: bool = True) -> Path:
    """Fetch ``url`` into ``dest`` (a cache path) unless a file is already there, verifying that
    its sha256 starts with ``sha256_prefix``. Returns ``dest``. Nothing unverified is ever left
    at ``dest``."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    if is_offline():
        raise OfflineError(_offline_message(url, dest, "offline mode: RESNETKIT_OFFLINE=1"))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache directory {dest.parent} ({exc}); set RESNETKIT_HOME to a writable directory") from None
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():  # another process finished the transfer while we waited
            return dest
        delay = BACKOFF_S
        for attempt in range(RETRIES + 1):
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            os.close(fd)
            tmp = Path(name)
            try:
                digest, received, total = _transfer(url, tmp, progress, dest.name)
                if total is not None and received != total:
                    raise DownloadError(
                        f"truncated transfer of {url}: got {received} of {total} bytes; nothing was cached, run again"
                    )
                if sha256_prefix and not digest.startswith(sha256_prefix):
                    raise DownloadError(
                        f"hash mismatch for {url}: expected sha256 {sha256_prefix}..., got {digest}; "
                        "the file was discarded (a proxy or a corrupted mirror may have altered it)"
                    )
                os.replace(tmp, dest)
                return dest
            except urllib.error.HTTPError as exc:
                if exc.code not in TRANSIENT_HTTP or attempt == RETRIES:
                    raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
            except DownloadError as exc:
                if "truncated" not in str(exc) or attempt == RETRIES:
                    raise
            except (urllib.error.URLError, OSError, socket.timeout, http.client.HTTPException) as exc:
                if _is_no_route(exc):
                    raise OfflineError(_offline_message(url, dest, f"no network: {getattr(exc, 'reason', exc)}")) from None
                if attempt == RETRIES:
                    raise OfflineError(_offline_message(url, dest, f"{getattr(exc, 'reason', exc)}")) from None
            finally:
                tmp.unlink(missing_ok=True)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def name_hash_prefix(file_name: str) -> Optional[str]:
    """The sha256 prefix the torch hub convention puts in a file name (``name-<hex>.pth``), if any."""
    m = HASH_IN_NAME.search(file_name)
    return m.group(1) if m else None


def fetch_url(url: str, progress: bool = True) -> Path:
    """Download an arbitrary weights URL into the cache under its own file name, verifying the
    hash prefix in that name when it has one (``resnet50-0676ba61.pth``)."""
    file_name = url.rsplit("/", 1)[-1].split("?")[0]
    if not file_name:
        raise DownloadError(f"{url} does not end in a file name; use a URL like https://host/path/model.pth")
    return download(url, cache_dir() / file_name, name_hash_prefix(file_name), progress=progress)
