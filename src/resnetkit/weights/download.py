"""Verified, cached, concurrent-safe downloads of weight files.

Cache keys: a file whose name carries torch hub's hash prefix (``resnet50-11ad3fa6.pth``) is kept
under that name, torch-hub compatible, and its sha256 must start with the prefix. Any other URL
is kept under a key derived from the whole URL (``by-url/<sha256(url)[:16]>-<name>``), so two
different files that share a name never shadow each other.

Nothing enters the cache unverified: the transfer goes to a temporary file, which must be
complete, match its hash prefix and parse as a weights file before it is renamed into place.
HTTP error answers are never written. A lock (in ``.locks/``) makes parallel callers (DDP ranks,
parallel jobs) share one transfer.

Why not ``torch.hub.download_url_to_file``: it has no timeout (an address that accepts and never
answers hangs forever), no retry of transient errors, and cannot reject a complete, well-hashed
transfer that is not a weights file; this module adds those around the same idea.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from ..errors import BadFile, DownloadError, OfflineError, ResnetkitError, TruncatedDownload
from ..fileio import default_mode, describe_os_error, make_dir

CHUNK = 1 << 20
RETRIES = 3  # attempts after the first, for transient failures only
BACKOFF_S = 0.5  # doubled after each failed attempt
DEFAULT_TIMEOUT_S = 20.0  # connect and read timeout (RESNETKIT_DOWNLOAD_TIMEOUT)
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")
URL_CACHE = "by-url"
LOCKS = ".locks"


__all__ = ["DownloadError", "OfflineError", "cache_dir", "download", "fetch_url", "url_cache_path"]


def cache_dir() -> Path:
    """``$RESNETKIT_HOME`` if set, else torch hub's checkpoints directory (``$TORCH_HOME/hub/checkpoints``,
    by default ``~/.cache/torch/hub/checkpoints``), where torchvision keeps the same files."""
    home = os.environ.get("RESNETKIT_HOME")
    if home:
        return Path(home).expanduser()
    hub = sys.modules.get("torch.hub")
    if hub is not None:  # torch loaded: its own answer (torch.hub.set_dir included)
        return Path(hub.get_dir()) / "checkpoints"
    # torch's documented rule, without importing torch (`resnetkit weights list` answers at once)
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch"
    )
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints"


def timeout_s() -> float:
    text = os.environ.get("RESNETKIT_DOWNLOAD_TIMEOUT", "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ResnetkitError(f"RESNETKIT_DOWNLOAD_TIMEOUT={text!r} is not a number of seconds") from None
    if value <= 0:
        raise ResnetkitError(f"RESNETKIT_DOWNLOAD_TIMEOUT={text!r} must be > 0 seconds")
    return value


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


def _is_timeout(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, (socket.timeout, TimeoutError))


def _transfer(url: str, tmp: Path, progress: bool, desc: str, timeout: float) -> tuple:
    """Stream ``url`` into ``tmp``; return (sha256 hex, bytes received, bytes announced or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": "resnetkit"})
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=None if progress else True,
            file=sys.stderr,
        ) as bar:
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


def _lock(dest: Path):
    from filelock import FileLock

    locks = make_dir(
        dest.parent / LOCKS if dest.parent.name != URL_CACHE else dest.parent.parent / LOCKS, "cache lock directory"
    )
    return FileLock(str(locks / (dest.name + ".lock")))


def _verified_attempt(url, dest, tmp, sha256_prefix, validate, progress, timeout) -> None:
    """One transfer into ``tmp``, checked for completeness, hash and content; raises to refuse."""
    digest, received, total = _transfer(url, tmp, progress, dest.name, timeout)
    if total is not None and received != total:
        raise TruncatedDownload(
            f"truncated transfer of {url}: got {received} of {total} bytes; nothing was cached, run again"
        )
    if sha256_prefix and not digest.startswith(sha256_prefix):
        raise DownloadError(
            f"hash mismatch for {url}: expected sha256 {sha256_prefix}..., got {digest}; "
            "the file was discarded (a proxy or a corrupted mirror may have altered it)"
        )
    if validate is not None:
        try:
            validate(tmp)
        except BadFile as exc:
            reason = str(exc).replace(str(tmp), "the download")
            raise DownloadError(f"{url} did not give a weights file: {reason}; nothing was cached") from None


def _give_up(exc: BaseException, url: str, dest: Path, host: str, timeout: float, attempt: int) -> Optional[Exception]:
    """The error to raise for a failed attempt, or None when it is worth trying again."""
    last = attempt == RETRIES
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code not in TRANSIENT_HTTP or last:
            return DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; nothing was cached")
        return None
    if isinstance(exc, TruncatedDownload):
        return exc if last else None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            f"no space left on the device for the weights cache {dest.parent}; free some space or set "
            "RESNETKIT_HOME to another disk; nothing was cached"
        )
    if _is_no_route(exc):
        return OfflineError(_offline_message(url, dest, f"no network: {getattr(exc, 'reason', exc)}"))
    if _is_timeout(exc):
        # A host that accepts but never answers is unlikely to answer on a retry.
        if attempt >= 1:
            return DownloadError(
                f"no answer from {host} within {timeout:g} s (twice) for {url}; nothing was cached: check the "
                "address, or raise RESNETKIT_DOWNLOAD_TIMEOUT for a slow server"
            )
        return None
    return OfflineError(_offline_message(url, dest, f"{getattr(exc, 'reason', exc)}")) if last else None


def download(
    url: str,
    dest: Path,
    sha256_prefix: Optional[str] = None,
    progress: bool = True,
    validate: Optional[Callable[[Path], None]] = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (a cache path) unless a file is already there, verifying that
    its sha256 starts with ``sha256_prefix`` and that ``validate(tmp)`` accepts it (it raises to
    refuse). Returns ``dest``. Nothing unverified is ever left at ``dest``."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    if is_offline():
        raise OfflineError(_offline_message(url, dest, "offline mode: RESNETKIT_OFFLINE=1"))
    try:
        make_dir(dest.parent, "weights cache directory")
    except BadFile as exc:
        raise DownloadError(f"{exc}; or set RESNETKIT_HOME to a writable directory") from None
    timeout = timeout_s()
    host = urllib.parse.urlsplit(url).netloc or url
    with _lock(dest):
        if dest.is_file():  # another process finished the transfer while we waited
            return dest
        delay = BACKOFF_S
        for attempt in range(RETRIES + 1):
            try:
                fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            except OSError as exc:
                raise DownloadError(describe_os_error(dest, exc, "write the cache file")) from None
            os.close(fd)
            tmp = Path(name)
            try:
                if progress:
                    print(f"downloading {url} (waiting up to {timeout:g} s for {host} to answer)", file=sys.stderr)
                _verified_attempt(url, dest, tmp, sha256_prefix, validate, progress, timeout)
                os.chmod(tmp, default_mode())
                os.replace(tmp, dest)
                return dest
            except (TruncatedDownload, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                error = _give_up(exc, url, dest, host, timeout, attempt)
                if error is exc:
                    raise
                if error is not None:
                    raise error from None
            finally:
                tmp.unlink(missing_ok=True)
            if progress:
                print(f"retrying in {delay:g} s", file=sys.stderr)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def name_hash_prefix(file_name: str) -> Optional[str]:
    """The sha256 prefix the torch hub convention puts in a file name (``name-<hex>.pth``), if any."""
    m = HASH_IN_NAME.search(file_name)
    return m.group(1) if m else None


def url_cache_path(url: str) -> Path:
    """Where ``url`` is cached: its own name if that carries a hash prefix (torch hub's
    convention), else a key derived from the full URL."""
    file_name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not file_name or file_name in (".", ".."):
        raise DownloadError(f"{url} does not end in a file name; use a URL like https://host/path/model.pth")
    if name_hash_prefix(file_name):
        return cache_dir() / file_name
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", file_name)[-80:]
    return cache_dir() / URL_CACHE / f"{key}-{safe}"


def fetch_url(url: str, progress: bool = True) -> Path:
    """Download an arbitrary weights URL into the cache (see ``url_cache_path``), verifying the
    hash prefix in its name when it has one and that it parses as weights."""
    from .io import validate_weights_file

    file_name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return download(
        url, url_cache_path(url), name_hash_prefix(file_name), progress=progress, validate=validate_weights_file
    )
