"""`resnetkit predict`: top-k classes for images; broken files are reported and the rest still predicted."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_weights_args, int_at_least, load_for_inference, pick_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files", description=__doc__)
    p.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (searched recursively)"
    )
    add_weights_args(p)
    p.add_argument("--topk", type=int_at_least(1), default=5, help="classes to show per image (default 5)")
    p.add_argument("-b", "--batch-size", type=int_at_least(1), default=32, help="images per forward pass (default 32)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument(
        "--cam",
        metavar="DIR",
        help="also write a Grad-CAM overlay per image into DIR (NAME_cam.png: where the model looked for its top class)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..data.decode import expand_inputs
    from ..deploy.loading import is_exported
    from ..engine.predict import predict_files
    from ..errors import BadFile, InvalidOption

    paths = expand_inputs(args.inputs)
    if not paths:
        raise BadFile(f"no files found in {' '.join(args.inputs)}")
    if not any(p.exists() for p in paths):  # before any weights are downloaded
        raise BadFile(f"none of the inputs exist: {' '.join(args.inputs)}")
    if args.cam:
        from ..fileio import check_output_dir
        from ..inspect.cam import require_grad_cam

        check_output_dir(args.cam, "--cam folder")
        require_grad_cam()
    model = load_for_inference(args)
    preprocess, classes = model.card.preprocess, model.card.classes
    if args.cam and is_exported(model):
        raise InvalidOption(
            f"--cam needs the PyTorch weights (Grad-CAM follows gradients); {args.weights} is an exported "
            f"{model.card.format} model"
        )
    device = pick_device(args.device, model)
    failed = 0
    predictions = predict_files(
        model, paths, preprocess, classes, topk=args.topk, batch_size=args.batch_size, device=device
    )
    for pred in predictions:
        failed += pred.error is not None
        if args.json:
            print(json.dumps(pred.to_dict()), flush=True)
        elif pred.error is not None:
            print(f"{pred.path}: ERROR {pred.error.removeprefix(pred.path + ': ')}", flush=True)
        else:
            tops = "  ".join(f"{c} {p:.1%}" for c, p in pred.top)
            print(f"{pred.path}: {tops}", flush=True)
        if args.cam and pred.error is None:
            written = write_cam(model, Path(pred.path), preprocess, Path(args.cam), device)
            if not args.json:
                print(f"  Grad-CAM: {written}", flush=True)
    if failed:
        print(f"{failed} of {len(paths)} files could not be read", file=sys.stderr)
        return 1
    return 0


def write_cam(model, path: Path, preprocess, folder: Path, device) -> Path:
    """The Grad-CAM overlay of one image (the crop the model saw), saved as FOLDER/NAME_cam.png."""
    from ..data.decode import load_image
    from ..fileio import atomic_path, make_dir
    from ..inspect.cam import cam_overlays

    x = preprocess.transform(model.card.in_chans)(load_image(path, preprocess.resize_size))[None].to(device)
    overlay = cam_overlays(model, x, preprocess.mean, preprocess.std)[0]
    make_dir(folder, "--cam folder")
    out = folder / f"{path.stem}_cam.png"
    with atomic_path(out, "Grad-CAM image") as tmp:
        overlay.save(tmp, format="PNG")
    return out
