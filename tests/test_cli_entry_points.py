"""Every command runs both ways: ``lgeseg_X`` (the console script) and ``python -m lgeseg.cli.X``.

Whether each CLI module has an ``if __name__ == "__main__":`` block that calls its ``main`` (or
``console_main``) is read with ``ast``, not with a subprocess per module (most import torch, seconds
each); two light ones are started for real with ``python -m ... --help``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lgeseg.cli

CLI_DIR = Path(lgeseg.cli.__file__).resolve().parent
ROOT = CLI_DIR.parents[1]
COMMAND_MODULES = sorted(p.stem for p in CLI_DIR.glob("*.py")
                         if "main" in {n.name for n in ast.parse(p.read_text()).body if isinstance(n, ast.FunctionDef)})


def main_block_calls(module: str) -> set[str]:
    """Names called inside ``module``'s top-level ``if __name__ == "__main__":`` block (empty without one)."""
    tree = ast.parse((CLI_DIR / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"':
            return {name.id for call in ast.walk(node) if isinstance(call, ast.Call)
                    for name in ast.walk(call) if isinstance(name, ast.Name)}
    return set()


def test_every_command_module_is_found() -> None:
    assert {"predict", "train", "evaluate", "postprocess", "synth", "demo", "finetune", "main"} <= set(COMMAND_MODULES)


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_command_module_runs_main_under_python_m(module: str) -> None:
    calls = main_block_calls(module)
    assert calls, f"lgeseg/cli/{module}.py defines main() but has no `if __name__ == \"__main__\":` block"
    assert calls & {"main", "console_main"}, f"lgeseg/cli/{module}.py: the __main__ block calls {sorted(calls)}"


def test_every_console_script_points_at_a_command_module() -> None:
    scripts = re.search(r"\[project\.scripts\]\n(.*?)\n\n", (ROOT / "pyproject.toml").read_text(), re.S)
    assert scripts is not None
    targets = dict(re.findall(r'^(\w+) = "lgeseg\.cli\.(\w+):\w+"$', scripts.group(1), re.M))
    assert targets and set(targets.values()) <= set(COMMAND_MODULES)


@pytest.mark.parametrize(("module", "prog"), [("evaluate", "lgeseg_evaluate"), ("main", "lgeseg")])
def test_python_m_prints_the_help(module: str, prog: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", f"lgeseg.cli.{module}", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {prog} ")
