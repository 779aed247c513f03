"""Regenerate src/resnetkit/models/data/*_pruned.json - the layer shapes of timm's pruned ECA-ResNets
(Knapsack pruning, Aflalo et al. 2020) - from the shape lists timm's installed package ships. A
development tool: the facts (shapes) are copied, no code.

    .venv/bin/python scripts/make_pruned_maps.py
"""

import json
from pathlib import Path

import timm.models

SOURCE = Path(timm.models.__file__).parent / "_pruned"
TARGET = Path(__file__).resolve().parents[1] / "src" / "resnetkit" / "models" / "data"

for name in ("ecaresnet50d_pruned", "ecaresnet101d_pruned"):
    shapes = {}
    for item in (SOURCE / f"{name}.txt").read_text().strip().split("***"):
        key, _, shape = item.partition(":")
        values = shape.strip()[1:-1]
        if values:
            shapes[key.strip()] = [int(v) for v in values.split(",")]
    TARGET.mkdir(parents=True, exist_ok=True)
    (TARGET / f"{name}.json").write_text(json.dumps(shapes, separators=(",", ":")) + "\n")
    print(f"{name}: {len(shapes)} layer shapes -> {TARGET / (name + '.json')}")
