"""`resnetkit models`: the builders with their block type, stage depths and parameter counts."""

from __future__ import annotations

import argparse
import json

import torch

from ..models import build_architecture, list_models  # noqa: F401 (torch: needed by describe)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the architectures", description=__doc__)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=run)


def describe(name: str) -> dict:
    """Block type, stage depths, groups/width and parameter count of a builder (built on the meta
    device, so even the 127M-parameter models cost no memory or init time)."""
    with torch.device("meta"):
        model = build_architecture(name)
    depths = [len(getattr(model, stage)) for stage in model.stage_names]
    block = type(model.layer1[0]).__name__  # type: ignore[index]
    return {
        "name": name,
        "block": block,
        "layers": depths,
        "groups": getattr(model, "groups", 1),
        "width_per_group": getattr(model, "base_width", 64),
        "params": sum(p.numel() for p in model.parameters()),
    }


def run(args: argparse.Namespace) -> int:
    rows = [describe(name) for name in list_models()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = f"{'model':<20} {'block':<11} {'stages':<14} {'groups x width':<15} {'params':>13}"
    print(header)
    print("-" * len(header))
    for r in rows:
        gw = f"{r['groups']}x{r['width_per_group']}d" if r["block"] == "Bottleneck" else "-"
        stages = "[" + ",".join(map(str, r["layers"])) + "]"
        print(f"{r['name']:<20} {r['block']:<11} {stages:<14} {gw:<15} {r['params']:>13,}")
    return 0
