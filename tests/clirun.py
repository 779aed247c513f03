"""Running the CLI in-process (``resnetkit.cli.main``): exit code, stdout and stderr, without the
cost of a new Python process."""

import contextlib
import io
from dataclasses import dataclass

from resnetkit.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())
