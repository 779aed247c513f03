"""Small file utilities every layer shares: atomic writes with normal permissions, safe
``torch.load``, and one-line errors for paths that cannot be read or written."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Union

from .errors import BadFile, Busy, DiskFull

PathLike = Union[str, "os.PathLike[str]"]


def default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give a new file (0644 under umask 022).
    Read without changing the umask (changing it is process-wide and racy), from /proc when
    available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


# errno -> what it means for a path the user gave, and the fix.
OS_ERROR_REASONS = {
    errno.EACCES: "permission denied; choose a path you can write to or fix its permissions",
    errno.EPERM: "permission denied; choose a path you can write to or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "no space left on the device; free some space or choose another disk",
    errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    errno.EISDIR: "it is a directory; give a file name",
    errno.ELOOP: "a symbolic link loop; fix or remove the link",
    errno.ENAMETOOLONG: "the name is too long",
}


def describe_os_error(path: Path, exc: OSError, action: str) -> str:
    """A one-line reason for an OSError on ``path``, naming the fix."""
    reason = OS_ERROR_REASONS.get(exc.errno or 0)
    if reason:
        return f"cannot {action} {path}: {reason}"
    return f"cannot {action} {path}: {exc.strerror or exc}"


def check_output_file(path: PathLike, what: str = "output file") -> Path:
    """Refuse, before any work is done, an output path that is a directory or lies under a file."""
    path = Path(path)
    if path.is_dir():
        raise BadFile(f"{what} {path} is a directory; give a file name")
    _check_writable_under(path, path, what)
    return path


def check_output_dir(path: PathLike, what: str = "output folder") -> Path:
    """Refuse, before any work is done, an output folder that is a file, lies under a file, or
    cannot be created or written into (it need not exist yet)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadFile(f"{what} {path} is a file, not a directory; choose another path")
    _check_writable_under(path / "probe", path, what)
    return path


def _check_writable_under(path: Path, shown: Path, what: str) -> None:
    """The nearest existing folder above ``path`` is a folder this process can write into."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadFile(f"{what} {shown}: {parent} is a file, not a directory; choose another path")
            # Probe by creating a file: permission bits do not tell (root, read-only mounts, /sys).
            try:
                with tempfile.TemporaryFile(dir=parent):
                    pass
            except OSError as exc:
                raise BadFile(
                    f"cannot write {what} {shown}: {describe_os_error(parent, exc, 'write into').split(': ', 1)[-1]}"
                ) from None
            break


def make_dir(path: PathLike, what: str = "directory") -> Path:
    """``mkdir -p`` with a one-line error (a file in the way, no permission, read-only disk)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadFile(f"{what} {path} is an existing file, not a directory; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadFile(describe_os_error(path, exc, f"create the {what}")) from None
    return path


LOW_SPACE_BYTES = 1 << 20  # a writer that fails with less than this free is taken to have filled the disk


def filled_the_disk(exc: BaseException, directory: Path) -> bool:
    """Whether a failed write failed for lack of space. Writers in C++ or Rust (torch.save to a path,
    ONNX, OpenVINO) turn ENOSPC into their own exception types ("unexpected pos 576 vs 534"), so
    besides the errno the free space left on that file system is asked."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(directory).free < LOW_SPACE_BYTES
    except OSError:
        return False


def disk_full_error(path: Path, what: str, existed: bool) -> DiskFull:
    kept = f"the previous {what} at {path} is kept unchanged" if existed else "nothing was written"
    return DiskFull(
        f"no space left on the device writing the {what} {path}; {kept}: free some space or choose another disk"
    )


@contextlib.contextmanager
def atomic_path(path: PathLike, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place, so
    readers only ever see the old complete file or the new complete file. The result gets the
    permissions a plain ``open()`` would give it (mkstemp's 0600 would hide it from other users).
    A writer that fails on a full disk is reported as DiskFull (naming the file, and that the
    previous one is kept), whatever exception the writer raised."""
    path = check_output_file(path, what)
    make_dir(path.parent)
    existed = path.exists()
    try:
        # The temporary name keeps the extension: some writers check it (torch.export.save).
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        if filled_the_disk(exc, path.parent):
            raise disk_full_error(path, what, existed) from None
        raise BadFile(describe_os_error(path, exc, f"write the {what}")) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except Exception as exc:
            if filled_the_disk(exc, path.parent):
                raise disk_full_error(path, what, existed) from None
            raise
        try:
            # Set after the writer is done: some writers (safetensors) replace the file they are given.
            os.chmod(tmp_path, default_mode())
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        except OSError as exc:
            if filled_the_disk(exc, path.parent):
                raise disk_full_error(path, what, existed) from None
            raise BadFile(describe_os_error(path, exc, f"write the {what}")) from None
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: PathLike, data: bytes, what: str = "file") -> None:
    """Atomically write ``data`` (through Python's own file I/O, so a full disk is an OSError)."""
    with atomic_path(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: PathLike, text: str, what: str = "file") -> None:
    """Atomically write a text file."""
    with atomic_path(path, what) as tmp:
        tmp.write_text(text)


def check_readable_file(path: PathLike, what: str = "file") -> Path:
    """A path that exists, is a regular file and can be read; otherwise a one-line BadFile that
    says which of those it is not."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            if path.is_symlink():
                raise BadFile(f"{what} {path}: a broken symbolic link (its target does not exist)") from None
            raise BadFile(f"{what} {path}: no such file") from None
        raise BadFile(describe_os_error(path, exc, "read")) from None
    if stat.S_ISDIR(st.st_mode):
        raise BadFile(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode))
            else "not a regular file"
        )
        raise BadFile(f"{what} {path} is {kind}; give a regular file")
    if not os.access(path, os.R_OK):
        raise BadFile(f"cannot read {what} {path}: permission denied; fix its permissions")
    return path


def save_torch(obj: Any, path: PathLike, what: str = "checkpoint") -> None:
    """torch.save, atomically. Serialised in memory, then written by Python's own file I/O: torch's
    C++ writer turns a full disk into "unexpected pos 576 vs 534", whether given a path or a file."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())


def _is_torchscript_archive(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(("/code/__torch__.py", "/constants.pkl")) or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torch(path: PathLike, map_location: str = "cpu") -> Any:
    """torch.load with ``weights_only=True``: tensors and plain containers only, so a file that
    tries to run code on unpickling is refused instead of executed."""
    import torch

    path = check_readable_file(path, "weights file")
    if _is_torchscript_archive(path):  # torch.load would hand it to torch.jit.load: refuse first
        raise BadFile(
            f"{path} is a TorchScript program (from torch.jit.save or `resnetkit export --format torchscript`), "
            "not a weights file; run it with torch.jit.load, or pass the weights it was exported from"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # The rejected callable is named as "GLOBAL posix.system" or "Unsupported global: GLOBAL x.y".
        detail = re.search(r"GLOBAL ([\w.]+)", text)
        if detail or "global" in text.lower():
            what = detail.group(1) if detail else "a Python object"
            raise BadFile(
                f"{path}: refused to load: the file asks to call {what}, which could run code; only "
                "tensors are accepted: re-save the state_dict alone (torch.save(model.state_dict(), ...))"
            ) from None
        raise BadFile(f"{path}: not a readable PyTorch checkpoint (corrupt or not a torch.save file)") from None
    except RuntimeError as exc:
        raise BadFile(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    except (EOFError, ValueError) as exc:
        raise BadFile(
            f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0] or 'truncated'})"
        ) from None
    except OSError as exc:
        raise BadFile(describe_os_error(path, exc, "read")) from None


# ---- one writer per run directory or output file ----------------------------------------------------


class OneWriter:
    """An exclusive lock for the life of a job that writes ``target`` (a run directory or an output
    table): a second process is refused at once, in one line naming the first (pid, command, start).

    The lock is an OS file lock (``filelock``): the kernel releases it when its process ends however
    it ends (SIGKILL included), so a lock is never left behind. Who holds it is written beside it,
    only to name them."""

    def __init__(self, target: PathLike, what: str = "run directory") -> None:
        from filelock import FileLock

        self.target, self.what = Path(target), what
        if self.target.suffix:  # a file: the lock sits beside it
            self.lock_path = self.target.with_name(f".{self.target.name}.lock")
        else:  # a directory: inside it
            self.lock_path = self.target / ".resnetkit.lock"
        self.owner_path = self.lock_path.with_name(self.lock_path.name + ".owner")
        self._lock = FileLock(str(self.lock_path), timeout=0)
        self.held = False

    def acquire(self) -> OneWriter:
        from filelock import Timeout

        make_dir(self.lock_path.parent, self.what)
        try:
            self._lock.acquire()
        except Timeout:
            raise Busy(
                f"{self.what} {self.target} is being written by another process ({self.owner()}); wait for it "
                "to finish, or choose another output"
            ) from None
        except OSError as exc:
            raise BadFile(describe_os_error(self.lock_path, exc, "lock")) from None
        self.held = True
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:200]}
        owner["since"] = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError):
            self.owner_path.write_text(json.dumps(owner))
        return self

    def owner(self) -> str:
        try:
            o = json.loads(self.owner_path.read_text())
            return f"pid {o['pid']} on {o['host']}, since {o['since']}: {o['command']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its pid is not recorded"

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                self.owner_path.unlink()
            self._lock.release()
            self.held = False

    def __enter__(self) -> OneWriter:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


LOCK_FILES = (".resnetkit.lock", ".resnetkit.lock.owner")
