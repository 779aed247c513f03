"""`resnetkit models [PATTERN ...]`: the architectures by family, with their block, stage depths and
what sets them apart, and how many published weights each has; PATTERN filters the names as timm's
``list_models`` does (``'*aa*'``, ``'resnetv2_*'``). Read from the architecture table alone (no model
is built, no torch is imported); ``--params`` builds each on the meta device to count parameters."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the architectures (by family; patterns filter)", description=__doc__)
    p.add_argument(
        "patterns", nargs="*", metavar="PATTERN", help="fnmatch patterns of names, e.g. '*aa*' (default: all)"
    )
    p.add_argument("--params", action="store_true", help="also count each model's parameters (builds it; slower)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=run)


FEATURES = (
    ("stem_type", {"deep": "deep stem", "deep_tiered": "tiered stem", "fixed": "BiT stem", "tiered": "tiered stem"}),
    ("avg_down", {True: "avg-pool shortcut"}),
    ("attn_layer", {"se": "SE", "eca": "ECA"}),
    ("aa_layer", {"avg": "AA (avg)", "blur": "BlurPool"}),
    ("replace_stem_pool", {True: "conv stem pool"}),
    ("norm", {"batch": "BatchNorm", "group": "GroupNorm", "evonorm_s0": "EvoNorm-S0", "frn": "FRN"}),
    ("norm_layer", {"group": "GroupNorm"}),
    ("std_conv", {True: "StdConv"}),
    ("block_reduce_first", {2: "reduce first"}),
    ("down_kernel_size", {3: "3x3 shortcut"}),
)


def describe(name: str) -> Dict[str, Any]:
    """What the table says of ``name`` (no model built)."""
    from ..models.table import ARCHITECTURES

    arch = ARCHITECTURES[name]
    fixed = arch.fixed
    notes = [label[fixed[key]] for key, label in FEATURES if fixed.get(key) in label]
    if fixed.get("groups", 1) > 1:
        notes.insert(0, f"{fixed['groups']}x{fixed['width_per_group']}d")
    elif fixed.get("width_per_group", 64) != 64:
        notes.insert(0, f"width x{fixed['width_per_group'] // 64}")
    if fixed.get("width_factor", 1) > 1:
        notes.insert(0, f"x{fixed['width_factor']} wide")
    if arch.channel_map:
        notes.append("pruned")
    return {"name": name, "family": arch.family, "block": arch.block, "layers": list(arch.layers), "notes": notes}


def _weights_per_arch() -> Dict[str, int]:
    from ..weights.catalog import list_weights

    counts: Dict[str, int] = {}
    for entry in list_weights():
        counts[entry.arch] = counts.get(entry.arch, 0) + 1
    return counts


def _params(name: str) -> int:
    import torch

    from ..models import build_architecture

    with torch.device("meta"):
        model = build_architecture(name)
    return sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidOption
    from ..models.table import ARCHITECTURES, FAMILIES, match

    names = match(args.patterns or None, list(ARCHITECTURES))
    if not names:
        raise InvalidOption(f"no architecture matches {' '.join(args.patterns)}; `resnetkit models` lists them all")
    weights = _weights_per_arch()
    rows: List[Dict[str, Any]] = []
    for name in names:
        row = describe(name)
        row["weights"] = weights.get(name, 0)
        if args.params:
            row["params"] = _params(name)
        rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for family in FAMILIES:
        members = [r for r in rows if r["family"] == family]
        if not members:
            continue
        print(f"{family} ({len(members)})")
        for r in members:
            stages = "[" + ",".join(map(str, r["layers"])) + "]"
            params = f" {r['params']:>13,}" if args.params else ""
            tags = f"{r['weights']} weights" if r["weights"] else "-"
            print(f"  {r['name']:<24} {r['block']:<17} {stages:<14}{params} {tags:<11} {', '.join(r['notes'])}")
    total = sum(r["weights"] for r in rows)
    print(f"{len(rows)} architectures, {total} published weights (`resnetkit weights list --arch NAME`)")
    return 0
