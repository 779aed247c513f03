"""Regenerate src/resnetkit/weights/data/timm_catalog.json: every pretrained tag of the models in timm's
resnet.py and resnetv2.py (174 with timm 1.0.31), with the facts timm publishes about it - its Hub
repository, preprocessing (input size, crop_pct, crop_mode, interpolation, mean, std, test size),
class count, license, paper - and its ImageNet-1k top-1/top-5 from timm's results-imagenet.csv (a
file of timm's GitHub repository, not of its package: pass its path). A development tool: facts
are copied, no code; resnetkit never imports timm.

    .venv/bin/python scripts/make_timm_catalog.py PATH/TO/pytorch-image-models/results/results-imagenet.csv
"""

import csv
import json
import math
import sys
from pathlib import Path

import timm
import torch
from timm.models import _registry

TARGET = Path(__file__).resolve().parents[1] / "src" / "resnetkit" / "weights" / "data" / "timm_catalog.json"


def results(path: Path) -> dict:
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["model"], row)  # the first row of a tag (the file is sorted by top-1)
    return rows


def params(arch: str, num_classes: int) -> int:
    with torch.device("meta"):
        model = timm.create_model(arch, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    scores = results(Path(sys.argv[1]))
    names = [n for n in timm.list_models() if _registry._model_to_module.get(n) in ("resnet", "resnetv2")]
    entries = []
    for tag_name in timm.list_pretrained():
        arch, _, tag = tag_name.partition(".")
        if arch not in names:
            continue
        cfg = _registry._model_pretrained_cfgs[tag_name].to_dict()
        in_chans, _, size = cfg["input_size"]
        crop_pct = cfg.get("crop_pct") or 0.875
        score = scores.get(tag_name)
        num_classes = 1000 if cfg.get("num_classes") is None else cfg["num_classes"]
        entry = {
            "name": tag_name,
            "arch": arch,
            "tag": tag,
            "hub_id": cfg.get("hf_hub_id"),
            "timm_url": cfg.get("url") or None,
            "num_classes": num_classes,
            "in_chans": in_chans,
            "preprocess": {
                "resize_size": int(math.floor(size / crop_pct)),
                "crop_size": size,
                "interpolation": cfg.get("interpolation") or "bilinear",
                "mean": list(cfg.get("mean")),
                "std": list(cfg.get("std")),
                **({"crop_mode": cfg["crop_mode"]} if cfg.get("crop_mode") not in (None, "center") else {}),
            },
            "test_input_size": (cfg.get("test_input_size") or [None, None, None])[-1],
            "test_crop_pct": cfg.get("test_crop_pct"),
            "license": cfg.get("license"),
            "paper": cfg.get("paper_ids") or None,
            "origin_url": cfg.get("origin_url") or None,
            "num_params": params(arch, num_classes),
            "acc1": float(score["top1"]) if score else None,
            "acc5": float(score["top5"]) if score else None,
            "eval_size": int(score["img_size"]) if score else None,
            "eval_crop_pct": float(score["crop_pct"]) if score else None,
        }
        entries.append(entry)
    TARGET.write_text(json.dumps(entries, indent=1) + "\n")
    scored = sum(1 for e in entries if e["acc1"] is not None)
    print(f"{len(entries)} tags ({scored} with ImageNet-1k results) -> {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
