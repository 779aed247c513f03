"""The machinery of the executable documentation (see tests/test_docs.py): the fenced blocks of each
page, the directory they run in, and how one block runs."""

import re
import shlex
from pathlib import Path

import pytest

from .clirun import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)(?:[ \t]+\{([^}]*)\})?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
MESSAGES = {"internet": "cannot download", "data": "does not exist"}


def blocks(pages=None):
    for page in pages if pages is not None else PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            lang, attrs, body = m.group(1), m.group(2) or "", m.group(3)
            if lang not in ("bash", "python"):
                continue
            line = text[: m.start()].count("\n") + 1
            options = dict(a.split("=", 1) for a in attrs.split() if "=" in a)
            # {scale=WHY}: a slow block that make test-scale runs (make test runs the rest of the page)
            marks = [pytest.mark.sweep] if "scale" in options else []
            yield pytest.param(lang, options, body, id=f"{page.relative_to(ROOT)}:{line}", marks=marks)


def commands(body):
    joined = re.sub(r"\\\n", " ", body)
    for raw in joined.splitlines():
        tokens = shlex.split(raw, comments=True)
        if tokens:
            yield tokens


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, digits_run):
    """A directory with a small digits run at runs/digits, as `make run` leaves (the session's shared
    16 px run, copied), and a folder of validation digits for int8 calibration."""
    import shutil

    from resnetkit.data.datasets import digits_val_images

    d = tmp_path_factory.mktemp("docs")
    shutil.copytree(digits_run, d / "runs" / "digits", ignore=shutil.ignore_patterns(".resnetkit.lock*"))
    digits_val_images(d / "runs" / "digits" / "calibration", count=40)
    (d / "out").mkdir()
    return d


def run_command(tokens, monkeypatch):
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        monkeypatch.setenv(name, value)
    if tokens[:3] == ["python", "-m", "resnetkit"]:
        tokens = tokens[2:]
    assert tokens[0] == "resnetkit", f"not a resnetkit command (mark the block {{skip=...}}): {shlex.join(tokens)}"
    args = [str(Path(t).expanduser()) if t.startswith("~") else t for t in tokens[1:]]
    if args[:1] == ["train"] and "--max-steps" not in args and "--help" not in args:
        args += ["--max-steps", "3"]
    return cli(*args)


def run_example(lang, options, body, workdir, monkeypatch, tmp_path):
    if "skip" in options:
        assert options["skip"], "a skipped example must say why"
        pytest.skip(f"not run here: {options['skip']}")
    monkeypatch.chdir(workdir)
    needs = options.get("needs")
    if needs:
        assert needs in MESSAGES, f"unknown needs={needs}"
        monkeypatch.setenv("RESNETKIT_OFFLINE", "1")
        monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path / "empty-cache"))
    if lang == "python":
        import resnetkit as rk

        if needs:
            with pytest.raises(rk.ResnetkitError, match=MESSAGES[needs]):
                exec(compile(body, "<docs>", "exec"), {"__name__": "__docs__"})
        else:
            exec(compile(body, "<docs>", "exec"), {"__name__": "__docs__"})
        return
    expected = int(options.get("exit", 1 if needs else 0))
    for tokens in commands(body):
        result = run_command(list(tokens), monkeypatch)
        where = f"{shlex.join(tokens)}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
        assert result.returncode == expected, where
        if expected == 1:
            errors = [line for line in result.stderr.splitlines() if line.strip() and "warning:" not in line]
            assert len(errors) == 1, where
            if needs:
                assert MESSAGES[needs] in errors[0], where
