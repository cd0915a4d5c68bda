"""The ``Example:`` sections of lgeseg's docstrings run and print what they show (doctest).

Examples run on tiny arrays or tiny synthetic data; one that needs a real model or dataset is
written as a ``Usage::`` block instead, which doctest does not run. Every public function of the
Python API modules (``API_MODULES``) has one or the other.
"""

from __future__ import annotations

import ast
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

#: The Python API (docs/ARCHITECTURE.md): every public function of these modules shows its use.
API_MODULES = (
    "augmentation/appearance.py", "augmentation/intensity.py", "augmentation/pipeline.py",
    "augmentation/presets.py", "augmentation/preview.py", "augmentation/spatial.py", "converters/common.py",
    "converters/dicom.py", "converters/emidec.py", "converters/mnms.py", "converters/mscmr.py", "core/atomic.py",
    "core/checks.py", "core/device.py", "core/records.py", "core/train_config.py", "datasets/ids.py",
    "datasets/layout.py", "datasets/validate.py",
    "evaluation/metrics.py", "evaluation/postprocessing.py", "experiments/cells.py", "experiments/demo.py",
    "experiments/example_rows.py", "experiments/figures.py", "experiments/grid.py", "experiments/launcher.py",
    "experiments/run.py",
    "experiments/scoring.py", "experiments/summary.py", "files/dicom.py",
    "files/dicom_study.py", "files/dicom_seg.py", "files/io.py",
    "harmonization/apply.py", "harmonization/cyclegan.py", "harmonization/cyclegan_train.py",
    "harmonization/gan_data.py", "harmonization/gan_plots.py", "harmonization/histogram.py",
    "harmonization/networks.py", "harmonization/translate.py", "inference/adaptation.py",
    "inference/ensemble.py", "inference/input_cases.py", "inference/nnunet_files.py", "inference/output_folder.py",
    "inference/overlays.py", "inference/prediction_settings.py", "inference/predictor.py", "inference/quality.py",
    "inference/segment.py", "inference/sliding_window.py",
    "model/archive.py", "model/card.py", "model/folder.py", "model/registry.py", "network/blocks.py",
    "network/unet.py", "planning/memory.py", "planning/planner.py", "planning/planner_presets.py",
    "planning/report.py", "planning/spacing.py", "planning/topology.py", "planning/verify.py",
    "preprocessing/arrays.py", "preprocessing/crop.py", "preprocessing/example_data.py",
    "preprocessing/fingerprint.py",
    "preprocessing/normalize.py", "preprocessing/parallel.py", "preprocessing/resample.py", "preprocessing/run.py",
    "report/build.py", "report/measures.py", "report/page.py", "synth/anatomy.py", "synth/centers.py",
    "synth/contrast.py", "synth/defects.py", "synth/montage.py", "synth/multicenter.py", "synth/phantom.py",
    "training/data.py", "training/distributed.py", "training/finetune.py", "training/loop.py", "training/losses.py",
    "training/plots.py", "training/prefetch.py", "training/recipes.py", "training/splits.py", "training/trainer.py",
    "training/training_data.py", "training/validate_epoch.py", "workflows/plan_and_preprocess.py",
    "workflows/self_training.py", "workflows/uncertain_voxels.py",
)


def test_examples_are_found() -> None:
    assert "lgeseg.datasets.layout" in MODULES and "lgeseg.evaluation.metrics" in MODULES


def functions_without_example(path: Path) -> list[str]:
    """Public module-level functions of ``path`` whose docstring has neither ``>>>`` nor a ``Usage`` block."""
    tree = ast.parse(path.read_text())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
            and not any(mark in (ast.get_docstring(node) or "") for mark in (">>>", "Usage::", "Usage ("))]


@pytest.mark.parametrize("path", API_MODULES)
def test_every_public_function_of_the_api_shows_its_use(path: str) -> None:
    assert functions_without_example(PACKAGE_DIR / path) == []


def test_a_function_without_example_is_found(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text('def shown():\n    """Doc.\n\n    >>> shown()\n    """\n\n\ndef hidden():\n    """Doc."""\n\n\n'
                      'def _private():\n    """Doc."""\n')
    assert functions_without_example(module) == ["hidden"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring example(s) failed (see above)"
