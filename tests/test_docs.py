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
  (cannot download / does not exist); {skip=reason} not run (make, torchrun), the reason is required;
  {scale=reason} a slow block run by make test-scale, not make test.
- ```text and other languages are output samples, not run.
"""

import pytest

from .docs_run import ROOT, blocks, run_example, workdir  # noqa: F401  (workdir: the fixture)

PAGES = [ROOT / name for name in ("README.md", "docs/cli.md", "docs/python.md", "docs/weights.md", "docs/index.md")]


@pytest.mark.parametrize("lang, options, body", list(blocks(PAGES)))
def test_documented_example(lang, options, body, workdir, monkeypatch, tmp_path):  # noqa: F811
    run_example(lang, options, body, workdir, monkeypatch, tmp_path)


GROUPS = (
    ("README.md", "docs/cli.md", "docs/python.md", "docs/weights.md", "docs/index.md"),
    ("docs/deploy.md", "docs/predict.md"),
    ("docs/training.md", "docs/architecture.md", "docs/explain.md", "docs/serve.md"),
)


def test_every_page_is_linked_from_the_readme():
    from .docs_run import PAGES as ALL

    readme = (ROOT / "README.md").read_text()
    for page in ALL[1:]:
        assert f"docs/{page.name}" in readme, page.name


def test_every_page_runs_in_exactly_one_test_file():
    from .docs_run import PAGES as ALL

    listed = [name for group in GROUPS for name in group]
    assert sorted(listed) == sorted(str(p.relative_to(ROOT)) for p in ALL)
