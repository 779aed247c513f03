"""`resnetkit` command line: one module per subcommand, each thin over the library layers.

Errors a user can cause are ``ResnetkitError``s and print as one line; anything else prints one
line too, with a pointer to ``--debug`` for the traceback. Library warnings print as one line each.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import time
import warnings
from typing import List, Optional

from ..errors import ResnetkitError, redact
from ..version import __version__
from . import bench as bench_cmd
from . import cache as cache_cmd
from . import eval as eval_cmd
from . import explain as explain_cmd
from . import export as export_cmd
from . import models as models_cmd
from . import predict as predict_cmd
from . import serve as serve_cmd
from . import summary as summary_cmd
from . import train as train_cmd
from . import weights as weights_cmd

STARTED = time.perf_counter()  # when the command began (as near as Python lets us know): the summaries' whole time

SUBCOMMANDS = [
    models_cmd,
    summary_cmd,
    explain_cmd,
    weights_cmd,
    train_cmd,
    eval_cmd,
    predict_cmd,
    export_cmd,
    bench_cmd,
    serve_cmd,
    cache_cmd,
]


class Parser(argparse.ArgumentParser):
    """argparse with exact flags only (no silent prefix matching) and a suggestion for a typo."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--version", action="version", version=f"resnetkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def flag_of(parser: argparse.ArgumentParser, field: str) -> Optional[str]:
    """The flag that sets ``field`` (an argparse dest) in this parser, e.g. --max-batch for max_batch."""
    for action in parser._actions:
        if action.dest == field and action.option_strings:
            long = [o for o in action.option_strings if o.startswith("--")]
            return (long or action.option_strings)[0]
    return None


def user_message(exc: ResnetkitError, parser: argparse.ArgumentParser) -> str:
    """The error as the command line says it: the settings the library names by their fields
    (max_batch) are named by the flags the user typed (--max-batch)."""
    text = str(exc)
    for field in getattr(exc, "fields", ()):
        flag = flag_of(parser, field)
        if flag:
            text = re.sub(rf"(?<![\w-]){re.escape(field)}(?![\w-])", flag, text)
    return text


def _one_line_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None):
        text = redact(" ".join(str(message).split()))
        print(f"resnetkit {command}: warning: {text}", file=sys.stderr)

    return show


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug works anywhere on the line (before or after the subcommand).
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.debug = debug
    command_parser = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr,index]
    if extra:  # let the subcommand's own parser report it, so the suggestion knows its flags
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warning(args.command)
        try:
            return int(args.handler(args) or 0)
        except ResnetkitError as exc:
            if args.debug:
                raise
            print(f"resnetkit {args.command}: error: {redact(user_message(exc, command_parser))}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # output piped into `head` and friends
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            print(f"resnetkit {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # the last resort: never a raw traceback unless asked for
            if args.debug:
                raise
            detail = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
            print(
                f"resnetkit {args.command}: unexpected error: {type(exc).__name__}"
                + (f": {detail}" if detail else "")
                + "; run with --debug for the traceback",
                file=sys.stderr,
            )
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
