"""scripts/setup.sh picks the torch build (issue 25, item 8), replayed with a stub venv: no install happens.

The script is copied into a temporary project root whose ``.venv/bin/python`` and ``.venv/bin/pip`` are
stubs: pip records its arguments, python answers "torch is missing", the index probe (reachable or not,
as the test says) and the final import check.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

PYTHON_STUB = """#!/usr/bin/env bash
case "$*" in
    *urlopen*) exit "$STUB_INDEX_EXIT" ;;
    "-c import torch") exit 1 ;;
esac
exit 0
"""
PIP_STUB = """#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
case "$*" in *--index-url*) exit "$STUB_CPU_INSTALL_EXIT" ;; esac
exit 0
"""
NVIDIA_SMI_STUB = "#!/usr/bin/env bash\necho 'GPU 0: NVIDIA H100'\n"


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _run_setup(tmp_path: Path, index_reachable: bool, gpu: bool = False, cpu_install_ok: bool = True) -> list[str]:
    """Run a copy of setup.sh against stubs; returns the pip commands it ran (one string each)."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", project / "scripts" / "setup.sh")
    (project / "pyproject.toml").write_text("[project]\nname = 'stub'\n")
    _executable(project / ".venv" / "bin" / "python", PYTHON_STUB)
    _executable(project / ".venv" / "bin" / "pip", PIP_STUB)
    stub_bin = tmp_path / "bin"
    stub_bin.mkdir()
    if gpu:
        _executable(stub_bin / "nvidia-smi", NVIDIA_SMI_STUB)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "nvidia-smi").exists())  # only the stub's GPU counts
    env = {**os.environ, "PATH": f"{stub_bin}{os.pathsep}{path}", "STUB_LOG": str(tmp_path / "pip.log"),
           "STUB_INDEX_EXIT": "0" if index_reachable else "1", "STUB_CPU_INSTALL_EXIT": "0" if cpu_install_ok else "1"}
    env.pop("LGESEG_TORCH_CPU_INDEX", None)
    result = subprocess.run(["bash", str(project / "scripts" / "setup.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert (project / ".venv" / ".lgeseg-installed").is_file()
    return (tmp_path / "pip.log").read_text().splitlines()


def test_without_a_gpu_torch_comes_from_the_cpu_wheel_index(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, index_reachable=True)
    assert f"install -q --disable-pip-version-check --index-url {CPU_INDEX} --timeout 60 torch==2.13.0" == calls[0]
    assert calls[1].endswith("[dev,dicom]") and len(calls) == 2


def test_an_unreachable_cpu_index_falls_back_to_the_plain_pin(tmp_path: Path) -> None:
    """This workplace: no route to download.pytorch.org, pip's local wheels hold the CPU build."""
    calls = _run_setup(tmp_path, index_reachable=False)
    assert calls[0] == "install -q --disable-pip-version-check torch==2.13.0"
    assert not any("--index-url" in call for call in calls)


def test_a_failed_cpu_index_install_falls_back_too(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, index_reachable=True, cpu_install_ok=False)
    assert "--index-url" in calls[0] and calls[1] == "install -q --disable-pip-version-check torch==2.13.0"


def test_with_an_nvidia_gpu_torch_comes_from_pypi(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, index_reachable=True, gpu=True)
    assert calls[0] == "install -q --disable-pip-version-check torch>=2.1"
