"""The tiny planned dataset that docstring examples of the preprocessing stage start from.

One call in place of the same four steps (make a phantom dataset, fingerprint it, plan it) in
every example; tests build their data with the fixtures of ``tests/conftest.py`` instead.
"""

from __future__ import annotations

from pathlib import Path

from lgeseg.core.records import Plan
from lgeseg.planning.planner import plan_experiment
from lgeseg.preprocessing.fingerprint import extract_fingerprint
from lgeseg.synth import tiny_dataset


def tiny_planned_dataset(folder: Path, cases: int = 1) -> tuple[Path, Plan]:
    """Write a tiny raw dataset below ``folder`` and plan it for the CPU.

    Args:
        folder: where ``raw/center1`` is written (created if missing).
        cases: phantom cases of center 1 (``c1_000``, ``c1_001``, ...): ``synth.tiny_dataset``.

    Returns:
        (the raw dataset folder, its plan: ``plan_experiment(extract_fingerprint([raw]), None, "cpu")``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw, plan = tiny_planned_dataset(Path(tmp.name), cases=2)
        >>> raw.relative_to(tmp.name).as_posix(), sorted(p.name for p in (raw / "labelsTr").iterdir()), plan.preset
        ('raw/center1', ['c1_000.nii.gz', 'c1_001.nii.gz'], 'cpu')
        >>> tmp.cleanup()
    """
    raw = tiny_dataset(Path(folder) / "raw", cases)
    return raw, plan_experiment(extract_fingerprint([raw]), gpu_memory_gb=None, preset="cpu")
