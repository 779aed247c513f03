"""`resnetkit cache list | prune`: the optimized models predict, serve and eval keep (converted,
quantized, preprocessing fused), the runtime choices remembered per machine, and OpenVINO's compiled
blobs - everything under ``$RESNETKIT_HOME`` (default ``~/.cache/resnetkit``) that can be rebuilt.
Downloaded weights are not here: see `resnetkit weights list`."""

from __future__ import annotations

import argparse
import json
import re
import time

from ..errors import InvalidOption

UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GB": 1 << 30}


def size_bytes(text: str) -> int:
    """'500M', '2G', '1.5GB', '4096' -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use e.g. 500M, 2G or a number of bytes")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days >= 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list and prune the optimized models kept for the next job", description=__doc__)
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    csub.required = True
    ls = csub.add_parser("list", help="where the cache is, each optimized model in it, and the sizes")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=run_list)
    pr = csub.add_parser("prune", help="remove optimized models (they are rebuilt when next needed)")
    pr.add_argument("--older-than", type=days, metavar="DAYS", help="those not used for DAYS days")
    pr.add_argument(
        "--max-size", type=size_bytes, metavar="SIZE", help="then the least recently used beyond SIZE (500M, 2G)"
    )
    pr.add_argument("--all", action="store_true", help="everything (also the remembered runtime choices)")
    pr.set_defaults(handler=run_prune)


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def run_list(args: argparse.Namespace) -> int:
    from ..deploy import runner_cache
    from ..home import cache_home

    entries = runner_cache.entries()
    blobs = runner_cache.folder_bytes(runner_cache.blob_cache())
    if args.json:
        for e in entries:
            record = {
                k: e.facts.get(k) for k in ("arch", "source", "backend", "precision", "input_size", "calibration")
            }
            record.update(key=e.key, path=str(e.folder), bytes=e.size_bytes)
            record.update(created=e.facts.get("created"), used=e.facts.get("used"))
            print(json.dumps(record))
        return 0
    print(f"cache: {cache_home()}")
    if entries:
        print(f"  {'key':<12} {'model':<28} {'runtime':<12} {'precision':<9} {'size':>9}  {'last used':<16}")
    for e in entries:
        f = e.facts
        model = str(f.get("arch") or f.get("source") or "-")[:28]
        print(
            f"  {e.key[:12]:<12} {model:<28} {str(f.get('backend')):<12} {str(f.get('precision')):<9} "
            f"{_mb(e.size_bytes):>9}  {_when(float(f.get('used') or 0)):<16}"
        )
    total = sum(e.size_bytes for e in entries)
    print(
        f"{len(entries)} optimized model{'s' if len(entries) != 1 else ''}, {_mb(total)}; OpenVINO's compiled "
        f"blobs {_mb(blobs)} (`resnetkit cache prune --older-than DAYS | --max-size SIZE | --all`)"
    )
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from ..deploy import runner_cache
    from ..home import cache_home

    if not (args.all or args.older_than is not None or args.max_size is not None):
        raise InvalidOption("say what to prune: --older-than DAYS, --max-size SIZE or --all")
    if args.all and (args.older_than is not None or args.max_size is not None):
        raise InvalidOption("--all removes everything: give it alone, or --older-than / --max-size without it")
    removed = runner_cache.prune(None if args.all else args.older_than, None if args.all else args.max_size)
    if args.all:
        (cache_home() / "optimize.json").unlink(missing_ok=True)
    freed = sum(e.size_bytes for e in removed)
    left = runner_cache.entries()
    print(
        f"removed {len(removed)} optimized model{'s' if len(removed) != 1 else ''}"
        + (f" ({_mb(freed)})" if freed else "")
        + f"; {len(left)} left ({_mb(sum(e.size_bytes for e in left))})"
        + ("; the remembered runtime choices and OpenVINO's blobs too" if args.all else "")
    )
    return 0
