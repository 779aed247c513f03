"""Executable documentation: every fenced example in README.md and docs/*.md runs as written.

- ```bash blocks: each command line (backslash continuations joined, comments dropped, leading
  VAR=value assignments applied) must be `resnetkit ...` or `python -m resnetkit ...`; it runs
  in-process through resnetkit.cli.main, in a directory holding a small training run at
  `runs/digits` (what `make run` leaves, made smaller: the session's shared 16 px run), and must exit 0. Training commands run for
  at most 3 steps (`--max-steps 3` is added): the flags and data are what is checked here, not the
  accuracy (the training tests check that).
- ```python blocks run in a fresh namespace in the same directory.
- Attributes after the language: {exit=N} the commands must fail with exit N and one error line;
  {needs=internet} / {needs=data} they must fail offline with the one-line message for that cause
  (cannot download / does not exist); {skip=reason} not run (make, torchrun), the reason is required.
- ```text and other languages are output samples, not run.
"""

import re
import shlex
from pathlib import Path

import pytest

from .clirun import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)(?:[ \t]+\{([^}]*)\})?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
MESSAGES = {"internet": "cannot download", "data": "does not exist"}


def blocks():
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            lang, attrs, body = m.group(1), m.group(2) or "", m.group(3)
            if lang not in ("bash", "python"):
                continue
            line = text[: m.start()].count("\n") + 1
            options = dict(a.split("=", 1) for a in attrs.split() if "=" in a)
            yield pytest.param(lang, options, body, id=f"{page.relative_to(ROOT)}:{line}")


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


@pytest.mark.parametrize("lang, options, body", blocks())
def test_documented_example(lang, options, body, workdir, monkeypatch, tmp_path):
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


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, page.name
