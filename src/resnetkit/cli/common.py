"""Argument groups and loading shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import List, Optional, Tuple

from torch import nn

from ..data.transforms import Preprocess
from ..weights.resolve import LoadedWeights, build_model, read_source


def add_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="SRC",
                   help="training run directory, .safetensors/.pt/.pth file, or catalog name (resnet50.IMAGENET1K_V2)")
    p.add_argument("--arch", default=None, help="architecture, when the weights file does not say")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")


def load_for_inference(args: argparse.Namespace) -> Tuple[nn.Module, LoadedWeights, Preprocess, Optional[List[str]]]:
    """The model with its weights, its evaluation preprocessing and its class names."""
    loaded = read_source(args.weights, progress=not args.no_progress)
    model = build_model(loaded, arch=args.arch, norm=loaded.meta.get("norm", "batch")).eval()
    pre = loaded.meta.get("preprocess")
    preprocess = Preprocess.from_dict(pre) if isinstance(pre, dict) else Preprocess()
    return model, loaded, preprocess, loaded.classes
