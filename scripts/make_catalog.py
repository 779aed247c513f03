"""Regenerate src/resnetkit/weights/data/{catalog.json,imagenet_classes.txt} from the facts that
torchvision's installed package publishes (URLs, accuracies, sizes, preprocessing, class names).
A development tool: resnetkit itself never imports torchvision.models.

    .venv/bin/python scripts/make_catalog.py
"""

import json
import re
from pathlib import Path

import torchvision.models as tvm

ARCHS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]

# File names of torchvision's first release: the same V1 weights serialised earlier, with their own
# sha256 prefixes. A cache that holds one of these is used without a download.
LEGACY_FILES = {
    "resnet18": "resnet18-5c106cde.pth",
    "resnet34": "resnet34-333f7ec4.pth",
    "resnet50": "resnet50-19c8e357.pth",
    "resnet101": "resnet101-5d3b4d8f.pth",
    "resnet152": "resnet152-b121ed2d.pth",
}

# Stronger ResNet weights published outside torchvision, with timm's evaluation settings.
# acc@1 at 224 px from "ResNet strikes back" (Wightman et al. 2021, Table 1: A1 80.4 %);
# the URL, file hash and preprocessing come from timm's pretrained config.
TIMM_EXTRA = [
    {
        "arch": "resnet50",
        "timm_name": "resnet50.a1_in1k",
        "tag": "TIMM_A1_IN1K",
        "acc1": 80.4,
        "acc5": None,
        "recipe": "https://arxiv.org/abs/2110.00476 (ResNet strikes back, procedure A1)",
    },
]

OUT = Path(__file__).resolve().parents[1] / "src" / "resnetkit" / "weights" / "data"


def timm_entries(categories) -> list:
    import math

    import timm

    out = []
    for extra in TIMM_EXTRA:
        cfg = timm.models.get_pretrained_cfg(extra["timm_name"]).to_dict()
        file_name = cfg["url"].rsplit("/", 1)[1]
        crop = cfg["input_size"][-1]
        tv = next(e for e in tvm.get_model_weights(extra["arch"]))
        out.append(
            {
                "name": f"{extra['arch']}.{extra['tag']}",
                "arch": extra["arch"],
                "tag": extra["tag"],
                "default": False,
                "url": cfg["url"],
                "file_name": file_name,
                "sha256_prefix": re.search(r"-([a-f0-9]+)\.", file_name).group(1),
                "legacy_files": [],
                "num_classes": cfg["num_classes"],
                "num_params": tv.meta["num_params"],
                "acc1": extra["acc1"],
                "acc5": extra["acc5"],
                "gflops": tv.meta["_ops"],
                "file_size_mb": None,
                "min_size": [1, 1],
                "recipe": extra["recipe"],
                "preprocess": {
                    "resize_size": math.floor(crop / cfg["crop_pct"]),
                    "crop_size": crop,
                    "interpolation": cfg["interpolation"],
                    "mean": list(cfg["mean"]),
                    "std": list(cfg["std"]),
                },
                "source": "timm",
            }
        )
    return out


def main() -> None:
    entries = []
    categories = None
    for arch in ARCHS:
        enum = tvm.get_model_weights(arch)
        for w in enum:
            meta = w.meta
            categories = categories or meta["categories"]
            assert meta["categories"] == categories
            t = w.transforms()
            file_name = w.url.rsplit("/", 1)[1]
            entry = {
                "name": f"{arch}.{w.name}",
                "arch": arch,
                "tag": w.name,
                "default": w is enum.DEFAULT,
                "url": w.url,
                "file_name": file_name,
                "sha256_prefix": re.search(r"-([a-f0-9]+)\.", file_name).group(1),
                "legacy_files": [],
                "num_classes": len(meta["categories"]),
                "num_params": meta["num_params"],
                "acc1": meta["_metrics"]["ImageNet-1K"]["acc@1"],
                "acc5": meta["_metrics"]["ImageNet-1K"]["acc@5"],
                "gflops": meta["_ops"],
                "file_size_mb": meta["_file_size"],
                "min_size": list(meta["min_size"]),
                "recipe": meta.get("recipe"),
                "preprocess": {
                    "resize_size": t.resize_size[0],
                    "crop_size": t.crop_size[0],
                    "interpolation": t.interpolation.value,
                    "mean": list(t.mean),
                    "std": list(t.std),
                },
                "source": "torchvision",
            }
            if w.name == "IMAGENET1K_V1" and arch in LEGACY_FILES:
                legacy = LEGACY_FILES[arch]
                entry["legacy_files"].append(
                    {"file_name": legacy, "sha256_prefix": re.search(r"-([a-f0-9]+)\.", legacy).group(1)}
                )
            entries.append(entry)
    entries += timm_entries(categories)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "catalog.json").write_text(json.dumps(entries, indent=1) + "\n")
    (OUT / "imagenet_classes.txt").write_text("\n".join(categories) + "\n")
    print(f"wrote {len(entries)} entries and {len(categories)} class names to {OUT}")


if __name__ == "__main__":
    main()
