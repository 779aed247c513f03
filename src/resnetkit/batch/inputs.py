"""The inputs of a batch job: a streaming, deterministic walk of files and folders, a job's share of
it (``--shard I/N``, torchrun ranks), and the inputs a resumed job has already done."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import AbstractSet, Callable, Iterator, Optional, Sequence, Tuple

from ..errors import InvalidOption


def default_workers() -> int:
    """As many decode processes as cores, up to 8 (the runtime uses the cores too: measured best here)."""
    return max(1, min(8, os.cpu_count() or 1))


def walk(sources: Sequence[str]) -> Iterator[str]:
    """Every input path, streamed: files as given (missing ones too, so they are reported), and the
    files under each folder, depth first, names sorted within each folder, hidden entries skipped.
    The order depends only on the names, so every process walking the same sources agrees on it, and
    a folder of a million files yields its first paths at once. A folder link that leads back to a
    folder being walked (a symlink loop) is not entered again."""
    for source in sources:
        if os.path.isdir(source):
            yield from _walk_dir(source, ())
        else:
            yield source


def _walk_dir(folder: str, above: Tuple[str, ...]) -> Iterator[str]:
    real = os.path.realpath(folder)
    if real in above:
        return  # a link back up the tree: its files are walked already, under their own names
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        yield folder  # an unreadable folder is reported as its own input
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk_dir(entry.path, above + (real,))
        else:
            yield entry.path


def input_key(path: str) -> str:
    """What identifies an input across runs: its absolute, normalised path (``imgs/a.jpg``,
    ``./imgs/a.jpg`` and ``imgs//a.jpg`` are one input; links are not resolved, so two names of one
    file stay two inputs)."""
    return os.path.normpath(os.path.abspath(path))


@dataclass(frozen=True)
class Shard:
    """Input k belongs to shard ``index`` of ``count`` when k % count == index."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' with 0 <= I < N."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
            raise InvalidOption(f"shard {text!r} must be I/N with 0 <= I < N, e.g. 0/4", field="shard")
        return cls(int(m[1]), int(m[2]))

    def within(self, rank: int, world: int) -> Shard:
        """This shard split again among ``world`` processes (torchrun ranks): rank ``rank``'s part."""
        return Shard(self.index * world + rank, self.count * world)

    def suffix(self) -> str:
        return f"shard-{self.index}-of-{self.count}" if self.count > 1 else ""

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def selected(
    sources: Sequence[str], shard: Shard = Shard(), done: AbstractSet[str] = frozenset()
) -> Iterator[Tuple[int, str]]:
    """(position in the walk, path) of the inputs this job still has to do."""
    for k, path in enumerate(walk(sources)):
        if k % shard.count == shard.index and (not done or input_key(path) not in done):
            yield k, path


class Counter:
    """Counts this job's inputs in a background thread, so a progress bar gets its total (and an ETA)
    without the job waiting for the walk of a large folder."""

    def __init__(self, sources: Sequence[str], shard: Shard, done: AbstractSet[str], on_total: Callable[[int], None]):
        self.total: Optional[int] = None
        self._thread = threading.Thread(
            target=self._count, args=(sources, shard, done, on_total), daemon=True, name="resnetkit-count"
        )
        self._thread.start()

    def _count(self, sources, shard, done, on_total) -> None:
        self.total = sum(1 for _ in selected(sources, shard, done))
        on_total(self.total)
