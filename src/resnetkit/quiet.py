"""resnetkit's output is resnetkit's: what third-party runtimes print (OpenVINO's converter banner, Ray's
progress logs, native libraries writing to the process's file descriptors) is held back, and shown
on standard error only when the user asked for it (``--verbose``) or when the call failed (then it
may explain the failure).

``third_party_output()`` wraps a noisy call; ``verbose_runtimes()`` is how a command says the user
asked for ``--verbose`` (a context variable: nothing process-wide is left changed).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import sys
import tempfile
import threading
from typing import Iterator

_VERBOSE: contextvars.ContextVar[bool] = contextvars.ContextVar("resnetkit_verbose_runtimes", default=False)
_LOCK = threading.RLock()  # one capture of the process's descriptors at a time (a nested one is inside it)


@contextlib.contextmanager
def verbose_runtimes(on: bool = True) -> Iterator[None]:
    """Within this block, third-party output is passed on (to standard error) instead of held back."""
    token = _VERBOSE.set(bool(on))
    try:
        yield
    finally:
        _VERBOSE.reset(token)


def _fd_of(stream) -> int:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return -1


@contextlib.contextmanager
def third_party_output(descriptors: bool = True, stdout: bool = True) -> Iterator[None]:
    """Hold back what the wrapped call prints: Python's ``sys.stdout``/``sys.stderr`` and, with
    ``descriptors``, the process's file descriptors 1 and 2 (native code). Some tools also look for
    ``--verbose`` in ``sys.argv`` (OpenVINO's converter does), which is resnetkit's own flag: it is
    hidden from them for the call. What was held back goes to standard error when the user asked for
    it, or when the call raised. ``stdout=False`` leaves standard output alone (the call prints
    results there itself)."""
    verbose = _VERBOSE.get()
    saved_argv = list(sys.argv)
    sys.argv[:] = [a for a in sys.argv if a != "--verbose"]
    held = io.StringIO()
    failed = False
    native = _nothing
    try:
        with _LOCK, _descriptors_held(descriptors, (1, 2) if stdout else (2,)) as native:
            out = contextlib.redirect_stdout(held) if stdout else contextlib.nullcontext()
            with out, contextlib.redirect_stderr(held):
                yield
    except BaseException:
        failed = True
        raise
    finally:
        sys.argv[:] = saved_argv
        text = held.getvalue() + native()
        if text.strip() and (verbose or failed):
            sys.stderr.write(text if text.endswith("\n") else text + "\n")
            sys.stderr.flush()


def _nothing() -> str:
    return ""


@contextlib.contextmanager
def _descriptors_held(on: bool, which=(1, 2)):
    """Descriptors ``which`` pointed at a temporary file for the block; yields a function that returns
    what was written there (after the block)."""
    fds = [fd for fd in which if on and fd in (_fd_of(sys.__stdout__), _fd_of(sys.__stderr__))]
    if not fds:
        yield _nothing
        return
    for stream in (sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]  # None (no console) is what suppress is for
    sink = tempfile.TemporaryFile()
    saved = {fd: os.dup(fd) for fd in fds}
    text = {"value": ""}
    try:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        yield lambda: text["value"]
    finally:
        for stream in (sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()  # type: ignore[union-attr]  # None (no console) is what suppress is for
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        sink.seek(0)
        text["value"] = sink.read().decode("utf-8", "replace")
        sink.close()


@contextlib.contextmanager
def loggers_quiet(prefix: str, level: int = 40) -> Iterator[None]:
    """Every logger of a package (``prefix`` and its children, each of which may have a level of its
    own) set to ``level`` (ERROR) for the block, unless the user asked for runtimes' output; the
    levels are put back afterwards."""
    import logging

    if _VERBOSE.get():
        yield
        return
    names = [n for n in list(logging.root.manager.loggerDict) if n == prefix or n.startswith(prefix + ".")]
    loggers = [logging.getLogger(n) for n in set(names) | {prefix}]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.level))
    try:
        yield
    finally:
        for lg, old in saved:
            lg.setLevel(old)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """Python warnings raised inside the block are dropped, even where a third-party import installs
    filters of its own (ExecuTorch's and coremltools' imports do, then warn about their own
    deprecated calls): the user cannot act on them. Restored on exit."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *args, **kwargs: None
        yield
