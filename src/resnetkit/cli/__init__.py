"""`resnetkit` command line: one module per subcommand, each thin over the library layers."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..errors import ResnetkitError
from . import bench as bench_cmd
from . import eval as eval_cmd
from . import export as export_cmd
from . import models as models_cmd
from . import predict as predict_cmd
from . import summary as summary_cmd
from . import train as train_cmd
from . import weights as weights_cmd

SUBCOMMANDS = [models_cmd, summary_cmd, weights_cmd, train_cmd, eval_cmd, predict_cmd, export_cmd, bench_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnetkit",
        description="The ResNet family: build, inspect, train, evaluate, predict, deploy.",
        allow_abbrev=False,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"resnetkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ResnetkitError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"resnetkit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"resnetkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
