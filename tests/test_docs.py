"""The examples in the docs run: every module's doctests (pit.units,
pit.book, pit.openpgp, pit.message, the kinds, ...) and the ``>>>``
examples of the Markdown pages (docs/pit-messages.5.md, docs/kinds/*.md,
docs/filters/*.md, ...), each a test of its own."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for pkg in ("pit", "filters", "moderator"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            if ">>>" in path.read_text():
                parts = path.relative_to(REPO).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _pages() -> list[Path]:
    return sorted(p for p in (REPO / "docs").rglob("*.md") if ">>>" in p.read_text())


@pytest.mark.parametrize("name", _modules())
def test_module_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, report=True)
    assert result.attempted and not result.failed, f"{name}: {result.failed} failed"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_page_examples(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS, report=True,
                              encoding="utf-8")
    assert result.attempted and not result.failed, f"{page.name}: {result.failed} failed"


def test_each_kind_and_filter_has_a_page_that_runs():
    from pit import kinds
    from pit.filter import FILTERS
    pages = {p.relative_to(REPO / "docs").as_posix() for p in _pages()}
    missing = [f"kinds/{k.NAME}.md" for k in kinds.KINDS if f"kinds/{k.NAME}.md" not in pages]
    missing += [f"filters/{f}.md" for f in FILTERS if f"filters/{f}.md" not in pages]
    assert not missing, f"write these pages, with examples that run: {missing}"
