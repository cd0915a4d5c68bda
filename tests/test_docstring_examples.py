"""The ``Example:`` sections of lgeseg's docstrings run and print what they show (doctest).

Examples run on tiny arrays or tiny synthetic data; one that needs a real model or dataset is
written as a ``Usage::`` block instead, which doctest does not run.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import lgeseg

PACKAGE_DIR = Path(lgeseg.__file__).resolve().parent


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name != "__main__.py" and ">>>" in path.read_text():
            parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_examples_are_found() -> None:
    assert "lgeseg.dataset" in MODULES and "lgeseg.evaluation" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring example(s) failed (see above)"
