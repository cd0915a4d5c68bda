"""The module paths of lgeseg 0.1 keep working for one release (``lgeseg/_moved.py``, issue 27).

An old path imports the new module itself (one object under both names), warns once with a
``DeprecationWarning`` naming the new path, and leaves no file at the old place.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import lgeseg
from lgeseg._moved import MOVED

PACKAGE_DIR = Path(lgeseg.__file__).resolve().parent


def _import_fresh(old: str) -> tuple[object, list[warnings.WarningMessage]]:
    """Import ``old`` as a fresh process would (not yet in ``sys.modules``), recording the warnings."""
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    return module, caught


def test_an_old_import_works_and_warns() -> None:
    sys.modules.pop("lgeseg.records", None)
    with pytest.warns(DeprecationWarning, match=r"lgeseg\.records moved to lgeseg\.core\.records"):
        from lgeseg.records import load_json
    from lgeseg.core import records

    assert load_json is records.load_json
    assert sys.modules["lgeseg.records"] is records


@pytest.mark.parametrize("old", sorted(MOVED))
def test_each_old_path_is_the_new_module(old: str) -> None:
    module, caught = _import_fresh(old)
    new = importlib.import_module(MOVED[old])
    assert module is new and sys.modules[old] is new
    assert new.__name__ == new.__spec__.name == MOVED[old]  # the new module keeps its own name and spec
    assert [(w.category, str(w.message).split(" (")[0]) for w in caught] == \
        [(DeprecationWarning, f"{old} moved to {MOVED[old]}")]
    assert not (PACKAGE_DIR.parent / (old.replace(".", "/") + ".py")).exists()


def test_the_old_spelling_from_the_package_works() -> None:
    """``from lgeseg import model_folder`` and ``from lgeseg.training import validation`` as in lgeseg 0.1."""
    for old in ("lgeseg.model_folder", "lgeseg.training.validation"):  # as in a fresh process
        sys.modules.pop(old, None)
        parent, _, name = old.rpartition(".")
        if hasattr(sys.modules[parent], name):
            delattr(sys.modules[parent], name)
    with pytest.warns(DeprecationWarning, match="lgeseg.model.folder"):
        from lgeseg import model_folder
    with pytest.warns(DeprecationWarning, match="lgeseg.training.validate_epoch"):
        from lgeseg.training import validation
    assert model_folder.load_model is importlib.import_module("lgeseg.model.folder").load_model
    assert validation.validate is importlib.import_module("lgeseg.training.validate_epoch").validate


def test_the_old_evaluation_module_is_the_package_that_reexports_it() -> None:
    from lgeseg.evaluation import dice, evaluate_folders, metrics

    assert dice is metrics.dice and evaluate_folders is metrics.evaluate_folders


def test_unknown_paths_are_still_errors() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lgeseg.no_such_module")


def test_importing_lgeseg_stays_light() -> None:
    """The finder is installed by ``import lgeseg`` without loading torch, NumPy or any stage."""
    code = ("import sys, lgeseg; print(sorted(m for m in sys.modules if m.startswith('lgeseg') "
            "or m in ('torch', 'numpy', 'SimpleITK')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lgeseg', 'lgeseg._moved']"
