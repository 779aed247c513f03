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


def add_tta_arg(p: argparse.ArgumentParser) -> None:
    from ..targets import TTA_CHOICES

    p.add_argument(
        "--tta",
        choices=list(TTA_CHOICES),
        default="none",
        help="test-time augmentation: flip averages the logits of each image and its mirror image (2x the "
        "work; default none)",
    )


def add_threshold_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=probability,
        default=None,
        metavar="P",
        help="multi-label models: the sigmoid probability a label needs, for every class (default: the per-class "
        "thresholds the training run tuned on its validation data, else 0.5)",
    )


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{value} is not a probability in [0, 1]")
    return value


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


def data_root(data: Optional[str], labels: Optional[str] = None) -> Optional[Path | str]:
    """The ImageFolder root ``--data`` names (DIR/val when present), checked; a ``cifar10:DIR`` spec
    as it is; a multi-label folder (``labels``, or DIR/labels.csv) as it is; None for the default (the
    weights' own run's validation split, else the digits)."""
    from ..data.cifar import parse
    from ..data.datasets import class_names
    from ..data.shards import is_shards
    from ..errors import BadFile

    if data is None:
        if labels is not None:
            raise BadFile("--labels names the images of --data DIR: add --data")
        return None
    if parse(data) is not None or is_shards(data):
        return data
    root = Path(data)
    if labels is not None or (root / "labels.csv").is_file():
        if not root.is_dir():
            raise BadFile(f"data folder {root} does not exist; pass --data DIR (the images --labels lists)")
        return root
    root = root / "val" if (root / "val").is_dir() else root
    class_names(root)  # says what is wrong with the folder before any model is loaded
    return root


def run_data(model) -> Optional[dict]:
    """The training configuration of the run the weights come from, when it did not train on the
    bundled digits (evaluating it on the digits would be wrong); None otherwise."""
    import json

    from ..engine.rundir import run_directory_of

    run = run_directory_of(model.card.source) if model.card.source else None
    if run is None:
        return None
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return config if config.get("data") is not None or config.get("task") == "multilabel" else None


def _evaluation_data(root: Optional[Path | str], model, preprocess, policy: str) -> Tuple[Any, List[str], str]:
    """(dataset, its class names, its description) before any check against the model."""
    from ..data.cifar import load_cifar, parse
    from ..data.datasets import FolderImages, class_names, find_images, load_digits
    from ..data.shards import evaluation_shards, is_shards
    from ..errors import BadFile

    own = run_data(model) if root is None else None
    if own is not None and is_shards(own["data"]):
        root = own["val_data"]
    if isinstance(root, str) and is_shards(root):
        card = model.card
        names = [card.class_name(i) for i in range(card.num_classes)]
        transform = preprocess.transform(card.in_chans)
        return evaluation_shards(root, names, transform, preprocess.resize_size, policy), names, root
    if own is not None and own.get("val_split") is not None:  # the held-out share of one folder, as trained
        from ..engine.config import TrainConfig
        from ..engine.setup import load_data

        split = load_data(TrainConfig.from_dict(own))
        return split.val, split.classes, f"the validation split of {own['data']}"
    if own is not None:
        root = own["data"] if parse(own["data"]) else data_root(own["data"])
    cifar = parse(root) if isinstance(root, str) else None
    if cifar is not None:
        split = load_cifar(*cifar)
        return split.val, split.classes, f"{cifar[0]} test images"
    if root is None:
        split = load_digits(image_size=preprocess.crop_size)
        return split.val, split.classes, "digits val split"
    folder = Path(root)
    transform = preprocess.transform(model.card.in_chans)
    dataset = FolderImages(find_images(folder), transform, short_side=preprocess.resize_size, policy=policy)
    if len(dataset) == 0:
        raise BadFile(f"no image files under {folder}")
    return dataset, class_names(folder), str(folder)


def labelled_data(
    root: Optional[Path | str], model, preprocess, classes, policy: str = "resnetkit"
) -> Tuple[object, List[str], str]:
    """(dataset, class names, description) of the evaluation data: the folder at ``root``, CIFAR's
    test images (``root`` a ``cifar10:DIR`` spec), else the validation data of the training run the
    weights come from, else the digits val split; its classes matched against the model's (refused
    when they cannot be)."""
    from ..errors import InvalidOption

    dataset, data_classes, source = _evaluation_data(root, model, preprocess, policy)
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
