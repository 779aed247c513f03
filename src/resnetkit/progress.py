"""Progress bars for long work (eval, predict, int8 calibration, optimize, bench, downloads).

tqdm, shown only when standard error is a terminal: a pipe or a log file gets the command's one-line
summary alone, not a stream of carriage returns."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, Optional


def bar(total: Optional[float] = None, desc: str = "", unit: str = "it", quiet: bool = False, **options: Any):
    """A tqdm bar on stderr: on a terminal only (``disable=None``), never with ``quiet``."""
    from tqdm import tqdm

    options.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, disable=True if quiet else None, file=sys.stderr, **options)


def track_batches(batches: Iterable, total: Optional[int], desc: str, quiet: bool = False) -> Iterator:
    """``batches`` of (images, targets, ...) passed through, the bar counting images."""
    with bar(total=total, desc=desc, unit="img", quiet=quiet, leave=False) as shown:
        for batch in batches:
            yield batch
            shown.update(len(batch[1]))
