"""`resnetkit predict`: classify (or embed) image files as a batch job - decoding in worker processes
overlapped with inference on the fastest backend, results printed or written to a table (Parquet,
CSV, JSON Lines) that is committed in chunks and can be resumed or sharded. Broken files are reported
and the rest still predicted."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import (
    add_runtime_args,
    add_threshold_arg,
    add_tta_arg,
    add_weights_args,
    int_at_least,
    load_for_inference,
    pick_device,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..batch.inputs import default_workers
    from ..data.policy import DECODE_POLICIES

    p = sub.add_parser("predict", help="classify or embed image files (a batch job)", description=__doc__)
    p.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (searched recursively)"
    )
    add_weights_args(p)
    p.add_argument(
        "--topk", type=int_at_least(1), default=5,
        help="classes per image (default 5; a multi-label model: at most this many of the labels above the threshold)",
    )  # fmt: skip
    add_threshold_arg(p)
    p.add_argument("-b", "--batch-size", type=int_at_least(1), default=32, help="images per forward pass (default 32)")
    add_runtime_args(p, "a run's val data, else the first inputs")
    add_tta_arg(p)
    p.add_argument("--out", "-o", metavar="FILE", help="write a table: .parquet, .csv or .jsonl (default: print)")
    p.add_argument("--embeddings", action="store_true", help="also record each image's pooled features (parquet/jsonl)")
    p.add_argument("--logits", action="store_true", help="also record the raw logits (parquet/jsonl)")
    p.add_argument("--resume", action="store_true", help="continue an existing --out table, skipping what it holds")
    p.add_argument("--exist-ok", action="store_true", help="replace an existing --out table")
    p.add_argument("--shard", metavar="I/N", help="take the I-th of N shares of the inputs (its own table)")
    p.add_argument("--chunk", type=int_at_least(1), default=512, help="rows committed to --out at a time (default 512)")
    p.add_argument(
        "-j", "--workers", type=int_at_least(0), default=default_workers(),
        help=f"decode processes (default {default_workers()}: the cores; 0 decodes in the main process)",
    )  # fmt: skip
    draft = p.add_mutually_exclusive_group()
    draft.add_argument(
        "--draft", dest="draft", action="store_true", default=False,
        help="decode large JPEGs at 1/2-1/8 scale (faster; not the reference pixels: see docs/predict.md)",
    )  # fmt: skip
    draft.add_argument("--no-draft", dest="draft", action="store_false", help="decode JPEGs at full size (the default)")
    p.add_argument(
        "--decode", choices=list(DECODE_POLICIES), default="resnetkit",
        help="resnetkit (default: EXIF orientation, alpha on white, 16-bit scaled) or reference "
        "(Image.open().convert('RGB'), as torchvision's and timm's examples)",
    )  # fmt: skip
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="local (default) or ray (Ray Data)")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: the cluster (default: start a local Ray)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.add_argument(
        "--verbose", action="store_true",
        help="a line each time a chunk of --out is committed, and the runtimes' own output (held back otherwise)",
    )  # fmt: skip
    p.add_argument(
        "--cam",
        metavar="DIR",
        help="also write a Grad-CAM overlay per image into DIR (NAME_cam.png: where the model looked for its top class)",
    )
    p.set_defaults(handler=run)


def job_config(args: argparse.Namespace):
    """The job the flags ask for, checked (before any model is loaded)."""
    from ..batch.inputs import Shard
    from ..batch.job import JobConfig

    shard = Shard.parse(args.shard) if args.shard else Shard()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # under torchrun: each rank its own share, and its own table
        shard = shard.within(rank, world)
    return JobConfig(
        sources=list(args.inputs), out=args.out, topk=args.topk, batch_size=args.batch_size, workers=args.workers,
        draft=args.draft, decode=args.decode, embeddings=args.embeddings, logits=args.logits, resume=args.resume,
        exist_ok=args.exist_ok, shard=shard, chunk=args.chunk, quiet=args.quiet, precision=args.precision,
        tta=args.tta, threshold=args.threshold,
    ).check()  # fmt: skip


def check_extras(args: argparse.Namespace) -> None:
    """Name a missing extra before any work is done."""
    if args.cam:
        from ..fileio import check_output_dir
        from ..inspect.cam import require_grad_cam

        check_output_dir(args.cam, "--cam folder")
        require_grad_cam()
    if args.out and Path(args.out).suffix.lower() == ".parquet":
        from ..batch.table import require_pyarrow

        require_pyarrow()
    if args.engine == "ray":
        from ..batch.ray_engine import require_ray

        require_ray()


def run(args: argparse.Namespace) -> int:
    from ..errors import BadFile

    cfg = job_config(args)
    check_extras(args)
    if not any(os.path.exists(s) for s in cfg.sources):  # before any weights are downloaded
        raise BadFile(f"none of the inputs exist: {' '.join(cfg.sources)}")
    from ..quiet import verbose_runtimes

    with verbose_runtimes(args.verbose):  # --verbose lets the runtimes' own output through too
        if args.engine == "ray":
            from ..batch.ray_engine import run_cli

            return run_cli(args, cfg)
        return _run_local_job(args, cfg)


def _run_local_job(args: argparse.Namespace, cfg) -> int:
    from ..errors import InvalidOption

    model = load_for_inference(args)
    from ..deploy.loading import is_exported

    if args.cam and is_exported(model):
        raise InvalidOption(
            f"--cam needs the PyTorch weights (Grad-CAM follows gradients); {args.weights} is an exported "
            f"{model.card.format} model"
        )
    return run_local(args, cfg, model)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_local(args: argparse.Namespace, cfg, model) -> int:
    from ..batch.job import run_job
    from ..batch.predictor import build_predictor, weights_identity
    from ..deploy.formats import preferred_backend
    from .predict_output import Printer, calibration_for

    device = pick_device(args.device, model)
    printer = Printer(args, model, device)

    def make_predictor(sample, inputs=None):
        predictor = build_predictor(
            model, cfg.precision, cfg.embeddings, cfg.batch_size, calibration_for(args, model, sample, say),
            device, log=say, backend=preferred_backend(args.backend, cfg.precision), small_job=inputs,
            tta=cfg.tta,
        )  # fmt: skip
        if not args.quiet and predictor.backend != getattr(getattr(predictor.runner, "choice", None), "backend", None):
            say(f"predict: {predictor.choice}")  # optimize() said it already when it chose
        printer.predictor = predictor
        return predictor

    from . import STARTED

    summary = run_job(
        cfg, model.card, make_predictor, printer.emit, weights_identity(model), log=say, on_chunk=printer.on_chunk,
        began=STARTED,
    )  # fmt: skip
    if not args.quiet:
        say(f"predict: {summary.line()}")
    if summary.failed:
        say(f"{summary.failed} of {summary.inputs} files could not be read")
        return 1
    return 0
