"""`resnetkit explain ARCH | --weights SRC [--image IMG] [--input-size N] --out explain.html`: one
self-contained page that walks through the network on a real image (see resnetkit.inspect.explain)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidOption
from .common import int_at_least
from .summary import parse_dilation

EARLY_SHORT_SIDE = 256  # the usual resize, to refuse an extreme aspect ratio before the model is loaded


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="one HTML page that walks through a ResNet on a real image", description=__doc__)
    p.add_argument("arch", nargs="?", help="architecture name (random weights), or give --weights")
    p.add_argument("--weights", metavar="SRC", help="trained weights: a run, file, URL, catalog name, Hub id or export")
    p.add_argument("--arch", dest="weights_arch", metavar="ARCH", help="architecture, when the weights do not say")
    p.add_argument("--image", metavar="IMG", help="the image to walk through (default: a sample photo)")
    p.add_argument("--input-size", type=int_at_least(16), metavar="N", help="crop side (default: the model's)")
    p.add_argument(
        "--dilation", type=parse_dilation, metavar="0,1,1", help="replace the stride of stages 2-4 with dilation"
    )
    p.add_argument("--out", required=True, metavar="FILE.html", help="where to write the page")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..data.decode import load_image
    from ..fileio import check_output_file, write_text
    from ..inspect.explain import explain

    if (args.arch is None) == (args.weights is None):
        raise InvalidOption("give an architecture (resnetkit explain resnet50) or --weights SRC, one of the two")
    if Path(args.out).suffix.lower() not in (".html", ".htm"):
        raise InvalidOption(f"--out {args.out}: the page is HTML; use a .html file name")
    check_output_file(args.out, "--out page")
    # A broken or absurd image (1 x 40,000 px) fails before any work; the model's own size is checked again later.
    image = load_image(args.image, EARLY_SHORT_SIDE) if args.image else None
    options = {"replace_stride_with_dilation": args.dilation} if args.dilation else {}
    if args.weights is not None:
        from ..deploy.loading import load_inference_model

        if options:
            raise InvalidOption("--dilation builds an architecture; with --weights the weights' own model is explained")
        model = load_inference_model(args.weights, arch=args.weights_arch, progress=not args.no_progress)
    else:
        from ..models import get_constructor

        get_constructor(args.arch)
        model = args.arch
    page = explain(
        model,
        image=image,
        input_size=args.input_size,
        image_name=Path(args.image).name if args.image else None,
        **options,
    )
    write_text(args.out, page, what="explain page")
    print(f"wrote {args.out}: open it in a browser (it needs no network)")
    return 0
