"""What the benchmark scripts share: the repository root, the synthetic centers' data, options and
parent model of the fine-tuning benchmarks, scoring a model on a test dataset, wall and CPU time,
markdown tables, writing one section of a ``docs/*.md`` file (the other sections are kept), and a
training run killed while it writes a checkpoint.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and they import
``_common``; they never import each other. The tests load this file too (``tests/conftest.py``,
fixture ``benchmarks_common``); it imports nothing of lgeseg at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "docs" / "RESULTS.md"
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"


def write_section(path: Path, text: str, section: str) -> None:
    """Replace one section of the markdown file ``path`` with ``text``, or append it when absent.

    Args:
        path: the markdown file (created with a ``# Results`` title when missing).
        text: the new section.
        section: a heading line (``"## Prediction speed"``): the section runs from that heading to the
            next ``## `` heading and ``text`` starts with the heading; or a key (``"finetune_sweep"``):
            the section is the block between ``<!-- key:begin -->`` and ``<!-- key:end -->``, which
            this function writes around ``text``.
    """
    old = path.read_text() if path.is_file() else "# Results\n"
    if section.startswith("#"):
        block, start = text.rstrip("\n") + "\n", old.find(section + "\n")
        end = -1 if start < 0 else old.find("\n## ", start + len(section))
        stop = len(old) if end < 0 else end + 1
    else:
        begin, finish = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
        block = f"{begin}\n{text}{finish}\n"
        start = old.find(begin) if finish in old else -1
        stop = old.find(finish) + len(finish) + 1 if start >= 0 else -1
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + block
    else:
        rest = old[stop:]
        new = old[:start] + block + ("\n" + rest if rest and section.startswith("#") else rest)
    path.write_text(new)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], *,
                   spaced_rule: bool = False) -> list[str]:
    """The lines of a markdown table: ``| a | b |`` header, the rule under it, then one line per row.

    Args:
        header: the column titles.
        rows: the cells of each row, written with ``str`` (format numbers before).
        spaced_rule: write the rule as ``| --- | --- |`` instead of ``|---|---|`` (same rendering; kept
            so a rewritten section stays byte-identical to the one in the docs).

    Raises:
        ValueError: a row has not as many cells as ``header``.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + (" --- |" if spaced_rule else "---|") * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"markdown table row {list(row)}: expected {len(header)} cells, found {len(row)}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return lines


def publish_section(text: str, section: str, *, write: bool, path: Path = RESULTS_MD) -> None:
    """Print a benchmark's markdown ``text`` and, when ``write``, make it ``section`` of ``path``.

    ``section`` is a heading or a marker key, as for :func:`write_section`; ``write`` is false for a
    script's ``--no-write`` (print only, the docs page is left alone).
    """
    print(text)
    if write:
        write_section(path, text, section)


def synthetic_centers(work: Path, centers: Sequence[int], cases: int,
                      test_cases: int) -> tuple[dict[int, Path], dict[int, Path]]:
    """The benchmarks' synthetic data: ``{center: raw dataset}`` of ``cases`` training cases per center
    (seed 0, ``work/raw_train``) and of ``test_cases`` held-out cases (seed 1, ``work/raw_test``)."""
    from lgeseg.synth import generate_multicenter  # deferred: this module imports nothing of lgeseg at load

    train = generate_multicenter(work / "raw_train", cases, 0, centers)
    test = generate_multicenter(work / "raw_test", test_cases, 1, centers)
    return dict(zip(centers, train, strict=True)), dict(zip(centers, test, strict=True))


def add_synthetic_center_options(parser: argparse.ArgumentParser, name: str, *, cases: int, test_cases: int,
                                 epochs: int) -> None:
    """The options of a fine-tuning benchmark on the synthetic centers (``synthetic_centers``).

    ``--work`` (default ``ROOT/runs/<name>``), ``--cases`` and ``--test-cases`` per center, ``--centers``
    (the targets, default 2 3 4), ``--epochs`` of fine-tuning, ``--iterations`` per epoch (default 25),
    ``--device``, ``--seed`` (default 0) and ``--no-write`` (print the docs section only).
    """
    parser.add_argument("--work", default=str(ROOT / "runs" / name))
    parser.add_argument("--cases", type=int, default=cases, help=f"training cases per center (default {cases})")
    parser.add_argument("--test-cases", type=int, default=test_cases,
                        help=f"held-out cases per center (default {test_cases})")
    parser.add_argument("--centers", type=int, nargs="+", default=[2, 3, 4], help="target centers")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"fine-tuning epochs (default {epochs})")
    parser.add_argument("--iterations", type=int, default=25, help="iterations per epoch (default 25)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")


def pretrain_center1(work: Path, raw: Path, device: str, **train_options: Any) -> Path:
    """The parent model of the fine-tuning benchmarks, ``work/models/pretrained`` (a finished one is reused).

    Synthetic center 1's raw dataset ``raw`` is preprocessed into ``work/pre1`` (planner preset ``cpu`` on
    a CPU, else ``default``) and trained by ``lgeseg.training.train(..., device=device, **train_options)``.
    """
    # deferred: this module imports nothing of lgeseg at load
    from lgeseg.training import train
    from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

    plan_and_preprocess([raw], work / "pre1", preset="cpu" if device == "cpu" else "default")
    base = work / "models" / "pretrained"
    if not trained(base):
        train(work / "pre1", base, device=device, **train_options)
    return base


class Stopwatch:
    """Wall time and this process's CPU time since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def minutes(self) -> dict[str, float]:
        """``{"wall_minutes", "cpu_minutes"}`` so far."""
        return {"wall_minutes": (time.perf_counter() - self.wall) / 60,
                "cpu_minutes": (time.process_time() - self.cpu) / 60}


def trained(model_dir: Path) -> bool:
    """True when ``model_dir`` already holds a finished model (a rerun of a benchmark reuses it)."""
    return (model_dir / "checkpoint_final.pt").is_file()


def bp_myo_dice(model_dir: Path, test_raw: Path, work: Path, device: str) -> float:
    """Mean Dice (blood pool, myocardium) of ``model_dir`` on the raw test dataset ``test_raw`` (no mirroring).

    Predictions go to ``work/pred/<model>_on_<dataset>``, metrics to ``work/eval/...``; a model scored
    after its last checkpoint is not predicted again (its ``summary.json`` is read).
    """
    # deferred: importing torch here would come before predict_speed.py pins its threads
    from lgeseg.experiments.scoring import BP_MYO, dice_means, mean_dice, predict_and_score

    name = f"{model_dir.name}_on_{test_raw.name}"  # one folder per (model, test center)
    evaluation = work / "eval" / name
    summary_file = evaluation / "summary.json"
    if summary_file.is_file() and summary_file.stat().st_mtime > (model_dir / "checkpoint_final.pt").stat().st_mtime:
        dice = dice_means(json.loads(summary_file.read_text()))
    else:
        dice = predict_and_score(test_raw / "imagesTr", test_raw, [model_dir], work / "pred" / name, evaluation,
                                 device=device, mirroring=False).dice
    value = mean_dice(dice, BP_MYO)
    if value is None:
        raise ValueError(f"{summary_file}: no blood pool or myocardium Dice (empty test set?)")
    return value


def finetune_and_score(parent: Path, pre: Path, out: Path, test_raw: Path, work: Path, device: str,
                       **finetune_options: Any) -> float:
    """Fine-tune ``parent`` on the preprocessed target ``pre`` into ``out`` (a finished ``out`` is reused), then
    its ``bp_myo_dice`` on ``test_raw``; ``finetune_options`` go to ``lgeseg.training.finetune``."""
    from lgeseg.training import finetune  # deferred: this module imports nothing of lgeseg at load

    if not trained(out):
        finetune(parent, pre, out, device=device, **finetune_options)
    return bp_myo_dice(out, test_raw, work, device)


#: ``python -c`` script: ``lgeseg.cli.train.main(sys.argv[1:])`` on one torch thread (as in-process runs: bit-identical
#: results need the same thread count), SIGKILLed half-way through writing epoch 2's checkpoint_latest.pt (the
#: checkpoint that holds the optimizer state): the file is written whole, cut to half its bytes, then the process dies.
_KILLED_DURING_CHECKPOINT = """
import os, signal, sys
import torch

real_save = torch.save

def save_then_die(payload, target, *args, **kwargs):
    if payload.get("epoch") == 2 and "optimizer" in payload:
        real_save(payload, target, *args, **kwargs)
        with open(target, "r+b") as handle:
            handle.truncate(os.path.getsize(target) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(payload, target, *args, **kwargs)

torch.save = save_then_die
torch.set_num_threads(1)
from lgeseg.cli.train import main
main(sys.argv[1:])
"""


def train_killed_during_checkpoint(argv: list[str], timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``lgeseg_train argv`` in a subprocess that is SIGKILLed while it writes epoch 2's ``checkpoint_latest.pt``.

    The reliability test and ``reliability_matrix.py`` both check that ``--continue`` then resumes bit-exactly.
    ``argv`` needs at least 3 epochs for the kill to come. The subprocess imports lgeseg from this repository
    (``ROOT`` first on ``PYTHONPATH``). Returns the finished process: return code -9 when it was killed,
    stdout and stderr as text; raises ``subprocess.TimeoutExpired`` after ``timeout_s`` seconds.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", _KILLED_DURING_CHECKPOINT, *argv], env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def link_subset(source: Path, target: Path, case_ids: list[str]) -> Path:
    """A raw dataset at ``target`` holding symlinks to ``case_ids`` of ``source`` (nnU-Net layout)."""
    meta = json.loads((source / "dataset.json").read_text())
    ending = meta.get("file_ending", ".nii.gz")
    for sub in ("imagesTr", "labelsTr"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for case in case_ids:
        for src, dst in ((source / "imagesTr" / f"{case}_0000{ending}", target / "imagesTr" / f"{case}_0000{ending}"),
                         (source / "labelsTr" / f"{case}{ending}", target / "labelsTr" / f"{case}{ending}")):
            if not dst.exists():
                dst.symlink_to(src.resolve())
    meta["numTraining"] = len(case_ids)
    (target / "dataset.json").write_text(json.dumps(meta, indent=1))
    return target
