"""`resnetkit` command line: one module per subcommand, each thin over the library layers."""

from __future__ import annotations

import argparse
import difflib
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


class Parser(argparse.ArgumentParser):
    """argparse with exact flags only (no silent prefix matching) and a suggestion for a typo."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            known = [o for a in self._actions for o in a.option_strings]
            hints = []
            for arg in message.split(":", 1)[1].split():
                flag = arg.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6) if flag.startswith("-") else []
                if close:
                    hints.append(f"{flag} -> {close[0]}")
            if hints:
                message += f" (did you mean: {', '.join(hints)}?)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="resnetkit",
        description="The ResNet family: build, inspect, train, evaluate, predict, deploy.",
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
    args, extra = parser.parse_known_args(argv)
    if extra:  # let the subcommand's own parser report it, so the suggestion knows its flags
        command_parser = parser._subparsers._group_actions[0].choices[args.command]
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
