"""Argument groups, validators and loading shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

if TYPE_CHECKING:
    import torch


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


def add_runtime_args(p: argparse.ArgumentParser, calibration_default: str, backend_default: str = "auto") -> None:
    """--precision, --backend and --calibration, from the runtime table (predict, serve, eval)."""
    from ..deploy.formats import BACKEND_CHOICES, ENV_BACKEND
    from ..targets import RUN_PRECISIONS

    p.add_argument("--precision", choices=list(RUN_PRECISIONS), default="fp32", help="default fp32")
    auto = (
        "auto (the fastest here: as measured on this kind of CPU, else measured once; the default)"
        if backend_default == "auto"
        else "auto (the fastest here, as measured on this kind of CPU, else measured once)"
    )
    p.add_argument(
        "--backend",
        choices=list(BACKEND_CHOICES),
        default=None,
        help=f"{auto}, measure (time every runtime here), or one runtime"
        + (f" (default: {backend_default} for fp32, auto otherwise)" if backend_default != "auto" else "")
        + f"; ${ENV_BACKEND} sets the default where that runtime offers the precision",
    )
    p.add_argument("--calibration", metavar="DIR", help=f"int8 calibration images (default: {calibration_default})")


def add_weights_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--weights",
        required=required,
        metavar="SRC",
        help="training run directory, .safetensors/.pt/.pth file, Hugging Face save_pretrained folder, "
        "http(s) URL, catalog name (resnet50.IMAGENET1K_V2), Hub id (hf-hub:timm/resnet50.a1_in1k, "
        "microsoft/resnet-50), or an exported model",
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

    from ..deploy.loading import is_exported
    from ..errors import InvalidOption

    exported = is_exported(model)
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidOption("--device cuda: no CUDA GPU is available here; use --device cpu (or auto)")
    if name == "cuda" and exported:
        raise InvalidOption("--device cuda runs PyTorch models; an exported model runs on its own runtime (CPU)")
    if name == "auto" and torch.cuda.is_available() and not exported:
        return torch.device("cuda")
    return torch.device("cpu")


def load_for_inference(args: argparse.Namespace) -> Any:
    """The model ``--weights`` names, in eval mode; its card (``model.card``) says what it is and how to
    feed it. Exported artifacts run on their runtime."""
    from ..deploy.loading import load_inference_model

    return load_inference_model(args.weights, arch=args.arch, progress=not args.no_progress, hf_config=args.hf_config)


# ---- labelled data (eval, bench --weights) ----------------------------------------------------------


def print_skipped(messages: list) -> None:
    for message in messages:
        print(f"skipped: {message}")


def data_root(data: Optional[str]) -> Optional[Path]:
    """The ImageFolder root ``--data`` names (DIR/val when present), checked; None for the digits."""
    from ..data.datasets import class_names

    if data is None:
        return None
    root = Path(data)
    root = root / "val" if (root / "val").is_dir() else root
    class_names(root)  # says what is wrong with the folder before any model is loaded
    return root


def labelled_data(
    root: Optional[Path], model, preprocess, classes, policy: str = "resnetkit"
) -> Tuple[object, List[str], str]:
    """(dataset, class names, description) of the evaluation data: the folder at ``root`` or the
    digits val split, its classes matched against the model's (refused when they cannot be)."""
    from ..data.datasets import FolderImages, class_names, find_images, load_digits
    from ..errors import BadFile, InvalidOption

    if root is None:
        split = load_digits(image_size=preprocess.crop_size)
        data_classes, dataset, source = split.classes, split.val, "digits val split"
    else:
        data_classes = class_names(root)
        transform = preprocess.transform(model.card.in_chans)
        dataset = FolderImages(find_images(root), transform, short_side=preprocess.resize_size, policy=policy)
        if len(dataset) == 0:
            raise BadFile(f"no image files under {root}")
        source = str(root)
    num_classes = model.num_classes
    if classes is not None and list(classes) != list(data_classes):
        if len(classes) == len(data_classes):
            print(
                "warning: the data's class folders are named differently from the model's classes; "
                "matching them by sorted order"
            )
        else:
            raise InvalidOption(
                f"the model has {num_classes} classes but {source} has {len(data_classes)}; "
                "evaluate on data with the model's classes"
            )
    elif num_classes != len(data_classes):
        raise InvalidOption(f"the model has {num_classes} outputs but {source} has {len(data_classes)} classes")
    return dataset, list(data_classes), source
