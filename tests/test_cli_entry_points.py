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


def parser_calls_without_allow_abbrev_false() -> list[str]:
    """Each ``ArgumentParser(...)``/``add_parser(...)`` call in lgeseg/cli without ``allow_abbrev=False``."""
    found = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in ("ArgumentParser", "add_parser"):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            value = keywords.get("allow_abbrev")
            if not (isinstance(value, ast.Constant) and value.value is False):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_parser_matches_option_prefixes() -> None:
    # argparse's prefix matching read nnU-Net's -d 4 as -device 4 and -p nnUNetPlans as -part_id (issue 25)
    assert parser_calls_without_allow_abbrev_false() == []


def test_the_lgeseg_command_runs_every_command_by_its_short_name(capsys: pytest.CaptureFixture,
                                                                  tmp_path: Path) -> None:
    from lgeseg.cli.main import COMMANDS, command_module
    from lgeseg.cli.main import main as lgeseg_main

    assert {f"lgeseg_{m}" for m in COMMAND_MODULES if m != "main"} == set(COMMANDS)
    assert all(command_module(name) == f"lgeseg.cli.{name.removeprefix('lgeseg_')}" for name in COMMANDS)
    assert lgeseg_main([]) == 0 and "plan-and-preprocess" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        lgeseg_main(["plan-and-preprocess", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: lgeseg_plan_and_preprocess ")
    with pytest.raises(SystemExit):
        lgeseg_main(["help", "evaluate"])
    assert capsys.readouterr().out.startswith("usage: lgeseg_evaluate ")
    assert lgeseg_main(["validate", str(tmp_path / "missing")]) == 1  # the command's own exit code
    assert lgeseg_main(["fly"]) == 2 and "unknown command 'fly'" in capsys.readouterr().err
