"""Executable documentation, continued: the pages below (split from tests/test_docs.py so that
pytest-xdist runs the pages on several workers)."""

import pytest

from .docs_run import ROOT, blocks, run_example, workdir  # noqa: F401  (workdir: the fixture)

PAGES = [ROOT / name for name in ("docs/training.md", "docs/architecture.md", "docs/explain.md", "docs/serve.md")]


@pytest.mark.parametrize("lang, options, body", list(blocks(PAGES)))
def test_documented_example(lang, options, body, workdir, monkeypatch, tmp_path):  # noqa: F811
    run_example(lang, options, body, workdir, monkeypatch, tmp_path)
