"""`resnetkit weights list | download NAME... | verify | convert SRC DST | push RUN REPO`: the catalog, the local
cache, conversion, publishing on the Hugging Face Hub."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import BadFile, InvalidOption


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, download, verify and convert weights", description=__doc__)
    wsub = p.add_subparsers(dest="action", metavar="ACTION")
    wsub.required = True
    ls = wsub.add_parser("list", help="the catalog, with what is cached")
    ls.add_argument("--arch", help="only this architecture")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=run_list)
    dl = wsub.add_parser("download", help="fetch weights into the cache ahead of time")
    dl.add_argument("names", nargs="+", metavar="NAME", help="e.g. resnet50.IMAGENET1K_V2 (or 'all')")
    dl.add_argument("--no-progress", action="store_true", help="no download progress bar")
    dl.set_defaults(handler=run_download)
    vf = wsub.add_parser(
        "verify", help="check files: the cached catalog files, or the weights and exported models named"
    )
    vf.add_argument(
        "sources", nargs="*", metavar="SRC",
        help="a run, weights file or exported model to check (its recorded hashes, its metadata, finite "
        "weights); none: re-hash every cached catalog file",
    )  # fmt: skip
    vf.set_defaults(handler=run_verify)
    cv = wsub.add_parser("convert", help="any supported weights file -> safetensors with metadata")
    cv.add_argument("src", help="a .pth/.pt/.safetensors file (torchvision, timm, a training checkpoint, ...)")
    cv.add_argument("dst", help="output .safetensors file")
    cv.add_argument("--arch", "--model", dest="arch", help="architecture, when it cannot be recognised from the keys")
    cv.add_argument("--hf-config", metavar="CONFIG_JSON", help="Hugging Face config.json (default: beside SRC)")
    cv.set_defaults(handler=run_convert)
    ps = wsub.add_parser("push", help="publish a training run on the Hugging Face Hub (timm and resnetkit load it)")
    ps.add_argument(
        "run", help="a training run directory, or a weights file it wrote (model.safetensors, best.pt, last.pt)"
    )
    ps.add_argument("repo", help="the repository: ORG/NAME (created if missing)")
    ps.add_argument("--private", action="store_true", help="create the repository private")
    ps.add_argument("--revision", help="the branch to commit to (default: main)")
    ps.add_argument("--message", help="the commit message")
    ps.set_defaults(handler=run_push)


def run_list(args: argparse.Namespace) -> int:
    from ..weights.catalog import list_weights
    from ..weights.download import cache_dir

    entries = list_weights(args.arch)
    if args.arch and not entries:
        raise InvalidOption(f"no weights for --arch {args.arch}; see `resnetkit models`")
    if args.json:
        for e in entries:
            cached = e.cached_path()
            print(
                json.dumps(
                    {
                        "name": e.name,
                        "arch": e.arch,
                        "tag": e.tag,
                        "default": e.default,
                        "acc1": e.acc1,
                        "acc5": e.acc5,
                        "params": e.num_params,
                        "gflops": e.gflops,
                        "size_mb": e.file_size_mb,
                        "url": e.url,
                        "hub_id": e.hub_id,
                        "num_classes": e.num_classes,
                        "license": e.license,
                        "preprocess": e.preprocess,
                        "test_input_size": e.test_input_size,
                        "cached": str(cached) if cached else None,
                    }
                )
            )
        return 0
    print(f"{'weights':<44} {'acc@1':>7} {'acc@5':>7} {'params':>8} {'size':>5} {'classes':>7}  {'from':<12} cached")
    for e in entries:
        cached = e.cached_path()
        mark = "*" if e.default else " "
        where = ("yes" + (f" ({cached.name})" if cached.name != e.file_name else "")) if cached else "no"
        if e.on_hub:
            where = "(HF cache)"
        acc1 = f"{e.acc1:>7.3f}" if e.acc1 is not None else f"{'-':>7}"
        acc5 = f"{e.acc5:>7.3f}" if e.acc5 is not None else f"{'-':>7}"
        size = e.test_input_size or e.preprocess["crop_size"]
        origin = "Hub" if e.on_hub else "URL"
        print(f"{e.name + mark:<44} {acc1} {acc5} {e.num_params / 1e6:>7.1f}M {size:>5} {e.num_classes:>7}  "
              f"{origin + ' ' + (e.license or ''):<12} {where}")  # fmt: skip
    print(
        f"{len(entries)} weights; * = DEFAULT; ImageNet-1k val top-1/top-5 as published (- = not an ImageNet-1k "
        f"classifier, or not published); size: evaluated at; cache: {cache_dir()} (URL), the Hugging Face cache (Hub)"
    )
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..weights.catalog import get_weights, list_weights

    names = [e.name for e in list_weights()] if args.names == ["all"] else args.names
    entries = [get_weights(n) for n in names]  # fail on a typo before downloading anything
    for e in entries:
        path = e.fetch(progress=not args.no_progress)
        print(f"{e.name}: {path}")
    return 0


def verify_sources(sources) -> int:
    """Each file read as every command reads it (hashes recorded when it was written, CRCs, the model
    card, finite weights): one line each, ok or BAD with the reason."""
    from pathlib import Path

    from ..deploy.formats import describe_unrunnable, detect
    from ..deploy.loading import load_inference_model
    from ..errors import ResnetkitError, redact
    from ..weights.resolve import resolve

    bad = 0
    for source in sources:
        try:
            unrunnable = describe_unrunnable(Path(source))
            if unrunnable is not None:
                print(f"ok    {source}: {unrunnable.arch}, {unrunnable.num_classes} classes, {unrunnable.format} "
                      f"{unrunnable.precision}; its spec and card checked, not run (its runtime does not run here)")  # fmt: skip
                continue
            card = load_inference_model(source, progress=False).card
            if detect(Path(source)) is None:  # weights: the hash is the file's (a built model's card drops it)
                card = card.but(weights_sha256=resolve(source, progress=False).card.weights_sha256)
        except ResnetkitError as exc:
            bad += 1
            print(f"BAD   {source}: {redact(str(exc))}")
            continue
        hashed = "its recorded hash matches" if card.weights_sha256 else "no hash recorded in it"
        print(f"ok    {source}: {card.arch or 'unknown architecture'}, {card.num_classes} classes, {card.format} "
              f"{card.precision}, {card.input_size} px; {hashed}")  # fmt: skip
    print(f"{len(sources)} checked, {bad} bad", file=sys.stderr)
    return 1 if bad else 0


def run_verify(args: argparse.Namespace) -> int:
    if args.sources:
        return verify_sources(args.sources)
    from ..weights.catalog import list_weights
    from ..weights.download import cache_dir, sha256_of

    checked, bad = 0, 0
    for e in list_weights():
        if e.on_hub:  # huggingface_hub verifies its own cache (huggingface-cli scan-cache)
            continue
        candidates = [(e.file_name, e.sha256_prefix)] + [(f["file_name"], f["sha256_prefix"]) for f in e.legacy_files]
        for file_name, prefix in candidates:
            path = cache_dir() / file_name
            if not path.is_file():
                continue
            checked += 1
            digest = sha256_of(path)
            if digest.startswith(prefix):
                print(f"ok    {path}")
            else:
                bad += 1
                print(
                    f"BAD   {path}: sha256 {digest} does not start with {prefix}; delete it and run "
                    f"`resnetkit weights download {e.name}`"
                )
    print(f"{checked} cached files checked in {cache_dir()}, {bad} bad", file=sys.stderr)
    return 1 if bad else 0


def run_push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..weights.publish import push

    url = push(Path(args.run), args.repo, private=args.private, revision=args.revision, message=args.message)
    print(f"published {args.run} as hf-hub:{args.repo} ({url})")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..fileio import check_output_file
    from ..weights.factory import model_from_weights
    from ..weights.io import save_safetensors
    from ..weights.resolve import resolve

    if not args.dst.endswith(".safetensors"):
        raise InvalidOption(f"{args.dst}: the output must be a .safetensors file")
    check_output_file(args.dst, "output file")
    loaded = resolve(args.src, config=args.hf_config)
    arch = args.arch or loaded.arch
    if arch is None:
        raise BadFile(f"{args.src}: not recognised as any resnetkit architecture; pass --arch if it is one")
    # Loading into the architecture validates the file before anything is written.
    model = model_from_weights(loaded, arch=arch)
    card = model.card.but(source=str(args.src), model_options=loaded.model_options, format="safetensors")
    save_safetensors(loaded.state, args.dst, card)
    print(f"{args.src} ({arch}, {len(loaded.state)} tensors) -> {args.dst}")
    return 0
