"""Print every optional extra pyproject.toml declares, comma-separated (``test,deploy,...``): what
`make install` installs, so that an extra added to pyproject.toml (a new runtime's) needs no edit
here or in the Makefile. Repository-only; stdlib (or pip's vendored tomli before Python 3.11)."""

import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the venv's pip carries the same parser
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

if __name__ == "__main__":
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    print(",".join(pyproject["project"]["optional-dependencies"]))
    sys.exit(0)
