"""The module paths of lgeseg 0.1 that moved, kept importable for one release (issue 27).

Nineteen modules lay at the package root; they now live in the package of their layer
(docs/ARCHITECTURE.md), and four modules whose names collided were renamed. ``lgeseg/__init__.py``
installs ``MovedModuleFinder`` on ``sys.meta_path``: importing an old path (``import lgeseg.records``,
``from lgeseg.io import read_image``, ``from lgeseg import model_folder``) imports the new module,
binds that same module object to the old name in ``sys.modules``, and warns once with a
``DeprecationWarning`` naming the new path. No file stays at the old place.

``lgeseg.evaluation`` is not listed: it is now the package of ``metrics`` and ``postprocessing`` and
re-exports ``metrics``' public names, so the old imports from it keep working without a warning.

Remove this module and its installation in the release after the move.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: Old dotted path -> new dotted path.
MOVED: dict[str, str] = {
    "lgeseg.atomic": "lgeseg.core.atomic",
    "lgeseg.checks": "lgeseg.core.checks",
    "lgeseg.device": "lgeseg.core.device",
    "lgeseg.errors": "lgeseg.core.errors",
    "lgeseg.records": "lgeseg.core.records",
    "lgeseg.io": "lgeseg.files.io",
    "lgeseg.dicom": "lgeseg.files.dicom",
    "lgeseg.dicom_seg": "lgeseg.files.dicom_seg",
    "lgeseg.dataset": "lgeseg.datasets.layout",
    "lgeseg.validation": "lgeseg.datasets.validate",
    "lgeseg.fingerprint": "lgeseg.preprocessing.fingerprint",
    "lgeseg.postprocessing": "lgeseg.evaluation.postprocessing",
    "lgeseg.model_folder": "lgeseg.model.folder",
    "lgeseg.model_card": "lgeseg.model.card",
    "lgeseg.model_archive": "lgeseg.model.archive",
    "lgeseg.model_registry": "lgeseg.model.registry",
    "lgeseg.plan_and_preprocess": "lgeseg.workflows.plan_and_preprocess",
    "lgeseg.self_training": "lgeseg.workflows.self_training",
    "lgeseg.planning.presets": "lgeseg.planning.planner_presets",
    "lgeseg.training.validation": "lgeseg.training.validate_epoch",
    "lgeseg.training.inputs": "lgeseg.training.training_data",
    "lgeseg.inference.inputs": "lgeseg.inference.input_cases",
    "lgeseg.inference.dicom_study": "lgeseg.files.dicom_study",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of ``MOVED`` and loads it as the new module itself.

    Example:
        >>> import sys, warnings
        >>> _ = sys.modules.pop("lgeseg.errors", None)  # as in a fresh process
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     from lgeseg.errors import InvalidInputError
        >>> InvalidInputError.__module__, sys.modules["lgeseg.errors"] is sys.modules["lgeseg.core.errors"]
        ('lgeseg.core.errors', True)
        >>> print(caught[0].category.__name__, caught[0].message)
        DeprecationWarning lgeseg.errors moved to lgeseg.core.errors (the old path goes in the next release)
    """

    def find_spec(self, fullname: str, path: object = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = MOVED[spec.name]
        # stacklevel 2: the line that imported the old path (warnings skips the import machinery's frames), so
        # Python's default filter shows the warning when that line is in __main__, a user's script.
        warnings.warn(f"{spec.name} moved to {new} (the old path goes in the next release)", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(new)
        # The import system sets __spec__ of the module returned here to the old name's spec; exec_module
        # puts the module's own spec back (its __name__, __file__ and __loader__ are left as they are).
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``lgeseg/__init__.py`` calls it).

    Example:
        >>> install()
        >>> sum(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path)
        1
    """
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
