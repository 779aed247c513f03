"""Exceptions a user can cause and fix. The CLI prints them as one line, without a traceback.

Every failure caused by input (an option, a file, the network, a missing optional package, a second
process on the same files) is a ``ResnetkitError`` raised where the input is checked, with a message
that names the problem and the fix. Subclasses also derive from the matching built-in exception, so
code that catches ``ValueError`` or ``OSError`` keeps working. Every exception class of the project
is defined here, so ``grep`` finds them in one place.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it hidden (``https://USER:TOKEN@host/`` ->
    ``https://***@host/``): proxies and mirrors are configured that way (HF_ENDPOINT, a weights URL),
    and what resnetkit prints or logs may be pasted into an issue."""
    return _USERINFO.sub(r"\1***@", text)


class ResnetkitError(Exception):
    """A problem with the user's input, files, or environment; the message names the fix.

    Library messages name settings as the Python API spells them; the CLI shows the flags instead
    (``--max-batch``), so one check serves both. Every subclass takes the same arguments.

    Args:
        message: what is wrong and how to fix it, in one line.
        field: the setting the problem is about (a config field or keyword argument, e.g. ``max_batch``).
        related: other settings the message mentions.

    Examples:
        >>> import resnetkit as rk
        >>> try:
        ...     rk.get_model("resnet18", num_classes=-1)
        ... except rk.InvalidOption as exc:  # also a ValueError
        ...     print(exc)
        num_classes must be an integer >= 0 (0 gives a head without classifier), got -1
    """

    def __init__(self, message: str = "", field: Optional[str] = None, related: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.related = tuple(related)

    @property
    def fields(self) -> Tuple[str, ...]:
        return ((self.field,) if self.field else ()) + self.related


class InvalidOption(ResnetkitError, ValueError):
    """An argument or setting outside its valid range; the message names it and the range."""


class BadFile(ResnetkitError, OSError):
    """A file or directory that cannot be read or written as asked (missing, unreadable, corrupt,
    of the wrong kind, or in an unwritable place)."""


class ImageDecodeError(BadFile):
    """An image file that cannot be used; the message names the file and the reason."""


class DamagedModel(BadFile):
    """A model file that reads but would compute garbage: non-finite weights, a checksum or hash
    that does not match, metadata that contradicts the graph."""


class DiskFull(BadFile):
    """A write failed because the file system is full; what was there before is kept."""


class Busy(ResnetkitError):
    """Another process is writing the same run directory or output file (it holds the lock)."""


class MissingDependency(ResnetkitError, ImportError):
    """An optional package (an extra) that the requested feature needs is not installed."""


class NotRunnableHere(ResnetkitError):
    """A model file whose runtime does not exist on this platform (Core ML outside Apple's systems):
    it can be written and inspected here, not run."""


class DownloadError(ResnetkitError):
    """A transfer failed or produced a file that is not the expected weights."""


class OfflineError(DownloadError):
    """The network is unreachable, or RESNETKIT_OFFLINE=1."""


class TruncatedDownload(DownloadError):
    """A transfer ended before the announced size: worth retrying (nothing was cached)."""


class EngineFailed(ResnetkitError):
    """A job on a distributed engine (Ray) failed inside a task or an actor; the message names the
    original error, not the engine's wrapping of it."""
