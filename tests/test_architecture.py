"""The import rule of docs/ARCHITECTURE.md: lgeseg's imports point down the layers and never form a cycle.

The import graph is read from the source with ``ast`` (every ``import``, function-level ones too), so
the test needs neither torch nor the data. A module's *unit* is its first name under ``lgeseg``
(``lgeseg/training/trainer.py`` -> ``training``, ``lgeseg/io.py`` -> ``io``); every unit sits in one
layer below, and a new package or top-level module must be placed there by whoever adds it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import lgeseg

PACKAGE_DIR = Path(lgeseg.__file__).resolve().parent

#: Layers from the bottom up; a unit may import units of its own layer or of a layer below it.
LAYERS: list[tuple[str, set[str]]] = [
    # the version, atomic file writes, the JSON records every stage exchanges (with their range checks),
    # lgeseg's exceptions, and the torch device rule
    ("foundation", {"lgeseg", "atomic", "records", "errors", "checks", "device"}),
    # image files <-> (array, geometry); the one module that reads and writes image bytes; which DICOM series of
    # a study are the LGE stacks (from the tags dicom reads: the converter and inference pick alike)
    ("files", {"io", "dicom", "dicom_study", "dicom_seg"}),
    # the one parser of dataset.json and of the case folders
    ("dataset", {"dataset"}),
    # what reads or writes raw datasets: validation (built on the parser), the phantom, the converters
    ("raw datasets", {"validation", "synth", "converters"}),
    # array and network building blocks of the stages; none knows of models or of its callers
    ("building blocks", {"network", "planning", "preprocessing", "fingerprint", "augmentation", "evaluation",
                         "postprocessing"}),
    # the model-folder contract (model.json, plans.json, checkpoints) shared by the stages below
    ("model folder", {"model_folder", "model_card", "model_archive", "model_registry"}),
    # intensity harmonization (histogram reference, CycleGAN): training writes it, inference applies it
    ("harmonization", {"harmonization"}),
    # the two stages that use a model: training and inference
    ("stages", {"training", "inference", "report"}),
    # runs of several stages: validate -> fingerprint -> plan -> preprocess, the demo, the paper's experiments
    ("orchestration", {"plan_and_preprocess", "experiments", "self_training"}),
    # the thin command-line front ends and `python -m lgeseg`
    ("commands", {"cli", "__main__"}),
]


def module_name(path: Path, root: Path) -> str:
    """``root/training/trainer.py`` -> ``lgeseg.training.trainer`` (a package's ``__init__`` is the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package tree it imports (every import statement, at any depth).

    ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``. Importing
    ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``: those count too, unless they are
    packages of the importer itself (Python runs those first, whatever the importer imports).
    """
    top = root.name
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for name in names:
                if name != top and not name.startswith(top + "."):
                    continue
                targets.add(name)
                parts = name.split(".")
                targets |= {".".join(parts[:i]) for i in range(2, len(parts))} - own_packages
        graph[module] = targets - {module}
    return graph


def unit_of(module: str) -> str:
    """``lgeseg.training.trainer`` -> ``training``; the root package is ``lgeseg``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layering_violations(graph: dict[str, set[str]], layers: list[tuple[str, set[str]]]) -> list[str]:
    """Imports of a unit in a higher layer, and units no layer names, as readable lines."""
    rank = {unit: i for i, (_, units) in enumerate(layers) for unit in units}
    problems = sorted({f"{unit_of(m)} is in no layer (add it to LAYERS)" for m in graph if unit_of(m) not in rank})
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source_unit, target_unit = unit_of(module), unit_of(target)
            if source_unit in rank and target_unit in rank and rank[target_unit] > rank[source_unit]:
                problems.append(f"{module} ({layers[rank[source_unit]][0]}) imports {target} "
                                f"({layers[rank[target_unit]][0]}), a layer above it")
    return problems


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph between units (a unit's imports of itself left out)."""
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(unit_of(module), set()).update(unit_of(t) for t in targets if unit_of(t) != unit_of(module))
    return units


#: The one import allowed to point up: ``lgeseg.segment``, the 3-line API, is a lazy attribute of the root
#: package (PEP 562 ``__getattr__``), loaded only when used, so ``import lgeseg`` stays light.
FACADE_IMPORTS = {"lgeseg.inference", "lgeseg.inference.segment"}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph(PACKAGE_DIR)
    found["lgeseg"] = found["lgeseg"] - FACADE_IMPORTS
    return found


def test_imports_point_down_the_layers(graph: dict[str, set[str]]) -> None:
    assert layering_violations(graph, LAYERS) == []


def test_modules_import_each_other_without_cycle(graph: dict[str, set[str]]) -> None:
    assert find_cycle(graph) is None


def test_units_import_each_other_without_cycle(graph: dict[str, set[str]]) -> None:
    assert find_cycle(unit_graph(graph)) is None


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """A planted upward import and a cycle through a package ``__init__`` are both reported."""
    root = tmp_path / "pkg"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    (root / "__init__.py").write_text("")
    (root / "high" / "__init__.py").write_text("from pkg.high.run import go\n")
    (root / "high" / "run.py").write_text("def go():\n    from pkg.low.part import helper\n")
    (root / "low" / "__init__.py").write_text("")
    (root / "low" / "part.py").write_text("from pkg.high.run import go\nhelper = go\n")
    graph = import_graph(root)
    layers = [("base", {"pkg", "low"}), ("top", {"high"})]
    assert layering_violations(graph, layers) == ["pkg.low.part (base) imports pkg.high (top), a layer above it",
                                                  "pkg.low.part (base) imports pkg.high.run (top), a layer above it"]
    assert find_cycle(graph) is not None
    assert layering_violations(graph, [("base", {"pkg", "low"})])[0] == "high is in no layer (add it to LAYERS)"


PENDING_REASON: set[tuple[str, str]] = set()  # function-level imports allowed without a reason (none)


def _says_why(line: str) -> bool:
    """A ``#`` comment of a few words on ``line`` (``# noqa: ...`` alone is no reason)."""
    comment = re.sub(r"noqa(: *[A-Z]+[0-9]+)?", " ", line.partition("#")[2])
    return "#" in line and len(re.findall(r"[A-Za-z]{2,}", comment)) >= 2


def unexplained_deferred_imports(root: Path) -> list[str]:
    """``file:line module`` of function-level imports with no reason comment.

    A function-level import hides a dependency, so issue 14 keeps only those that keep torch, SciPy,
    matplotlib or an optional package out of a start-up, each with a one-line reason: on the import's
    line or on the line above the first such import of its function (that reason covers the rest).
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        seen: set[int] = set()
        for function in functions:
            explained = False
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in seen:
                    continue
                seen.add(id(node))
                explained = explained or _says_why(lines[node.lineno - 1]) or \
                    lines[node.lineno - 2].strip().startswith("#")
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if not explained and (path.relative_to(root).as_posix(), module) not in PENDING_REASON:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {module}")
    return found


def test_every_function_level_import_says_why() -> None:
    assert unexplained_deferred_imports(PACKAGE_DIR) == []


def test_an_unexplained_function_level_import_is_reported(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("def f():\n    import json  # noqa: F401\n\n\ndef g():\n"
                                     "    # deferred: a reason\n    import csv\n    import os\n")
    assert unexplained_deferred_imports(tmp_path) == ["mod.py:2 json"]
