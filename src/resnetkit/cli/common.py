"""Argument groups, validators and loading shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:
    import torch

    from ..data.transforms import Preprocess
    from ..models import ResNetBase
    from ..weights.resolve import LoadedWeights


def int_at_least(low: int, flag_hint: str = ""):
    """argparse type: an integer >= ``low`` (the error names the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer{flag_hint}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}{flag_hint}")
        return value

    return parse


def float_above(low: float, inclusive: bool = False):
    """argparse type: a number > ``low`` (>= with ``inclusive``; the error names the range)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= low if inclusive else value > low):  # NaN fails both
            raise argparse.ArgumentTypeError(f"{value} must be {'>=' if inclusive else '>'} {low:g}")
        return value

    return parse


def export_metadata(model, classes, preprocess: Preprocess, **extra) -> dict:
    """What every exported file carries: arch, classes, preprocessing, input channels."""
    return {
        "arch": model.arch,
        "num_classes": model.num_classes,
        "classes": classes,
        "preprocess": preprocess.to_dict(),
        "in_chans": getattr(model, "in_chans", 3),
        **extra,
    }


def add_weights_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--weights",
        required=required,
        metavar="SRC",
        help="training run directory, .safetensors/.pt/.pth file, Hugging Face save_pretrained folder, "
        "http(s) URL, or catalog name (resnet50.IMAGENET1K_V2)",
    )
    p.add_argument(
        "--arch",
        "--model",
        dest="arch",
        default=None,
        help="architecture, when the weights do not say (see `resnetkit models`)",
    )
    p.add_argument(
        "--hf-config",
        metavar="CONFIG_JSON",
        default=None,
        help="a Hugging Face config.json to check transformers weights against (found beside them by default)",
    )
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where a PyTorch model runs: auto (cuda when available, else cpu; default), cpu, cuda",
    )


def pick_device(name: str, model: object) -> torch.device:
    """The device ``--device`` names; exported artifacts run on their runtime's (CPU) device."""
    import torch

    from ..errors import InvalidOption

    exported = getattr(model, "format", None) is not None
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidOption("--device cuda: no CUDA GPU is available here; use --device cpu (or auto)")
    if name == "cuda" and exported:
        raise InvalidOption("--device cuda runs PyTorch models; an exported model runs on its own runtime (CPU)")
    if name == "auto" and torch.cuda.is_available() and not exported:
        return torch.device("cuda")
    return torch.device("cpu")


def load_for_inference(args: argparse.Namespace) -> Tuple[ResNetBase, LoadedWeights, Preprocess, Optional[List[str]]]:
    """The model with its weights (in eval mode), its evaluation preprocessing and its class
    names, all read from the model's ``pretrained_cfg``; exported artifacts run on their runtime."""
    from ..deploy.loading import load_any

    return load_any(args.weights, arch=args.arch, progress=not args.no_progress, hf_config=args.hf_config)
