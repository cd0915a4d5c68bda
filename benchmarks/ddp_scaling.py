"""Data-parallel speed-up on the CPU: one model trained by 1 and by N gloo processes of one thread each.

Synthesizes center-1 phantoms (``lgeseg.synth``), plans and preprocesses them with the ``cpu``
preset (a small network), then runs ``lgeseg_train`` once per process count with the same global
batch, epochs and seed (``--gpus N --device cpu``: torchrun, gloo, ``OMP_NUM_THREADS=1`` per
process). Reports training samples/s (validation excluded; the first epoch, which includes
start-up, is left out), the speed-up over one process and the final validation Dice, and writes
the table into docs/scaling.md between ``<!-- ddp_scaling:begin/end -->``.

On a machine whose cores are shared with other work the wall-clock rate says more about the other
work than about the processes; the table therefore also gives samples per CPU-second of the busiest
process (``cpu_seconds`` in the history: the rate if every process had a core of its own, with the
time spent waiting for the other rank's gradients left out).

    nice -n 10 python benchmarks/ddp_scaling.py --processes 1 2
    python benchmarks/ddp_scaling.py --cases 4 --epochs 2 --iterations 3 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCALING = ROOT / "docs" / "scaling.md"


def prepare(work: Path, cases: int) -> Path:
    """Synthetic center-1 cases, planned and preprocessed with the ``cpu`` preset; returns the folder."""
    from lgeseg.cli.plan_and_preprocess import main as plan_main
    from lgeseg.synth import generate_multicenter

    raw = generate_multicenter(work / "raw", cases, seed=0, centers=(1,))[0]
    if plan_main(["-d", str(raw), "-o", str(work / "pre"), "--preset", "cpu"]) != 0:
        raise RuntimeError(f"planning/preprocessing {raw} failed")
    return work / "pre"


def train_once(pre: Path, model_dir: Path, processes: int, args: argparse.Namespace) -> dict:
    """Train with ``processes`` gloo processes (one thread each); returns timings and validation Dice."""
    command = [sys.executable, "-m", "lgeseg.cli.train", "-p", str(pre), "-o", str(model_dir), "--device", "cpu",
               "--epochs", str(args.epochs), "--iterations-per-epoch", str(args.iterations),
               "--batch-size", str(args.batch), "--num-workers", "1", "--seed", str(args.seed)]
    if processes > 1:
        command += ["--gpus", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    from lgeseg.training import load_checkpoint

    history = load_checkpoint(model_dir / "checkpoint_latest.pt")["history"]
    rates = history["samples_per_second"][1:] or history["samples_per_second"]
    cpu = history["cpu_seconds"][1:] or history["cpu_seconds"]
    return {"processes": processes, "samples_per_s": sum(rates) / len(rates),
            "samples_per_cpu_s": args.iterations * args.batch * len(cpu) / sum(cpu),
            "train_s_per_epoch": sum(history["seconds"][1:] or history["seconds"]) / max(len(rates), 1),
            "wall_s": wall, "val_mean_dice": history["val_mean_dice"][-1], "train_loss": history["train_loss"][-1],
            "load_before": load_before}


def markdown(rows: list[dict], args: argparse.Namespace, plan: dict) -> str:
    """The docs/scaling.md table."""
    base, base_cpu = rows[0]["samples_per_s"], rows[0]["samples_per_cpu_s"]
    features = plan["topology"]["features_per_stage"]
    text = (f"`python benchmarks/ddp_scaling.py {' '.join(args.argv)}`: {args.cases} synthetic center-1 cases, "
            f"`cpu` preset (patch {plan['patch_size'][0]}x{plan['patch_size'][1]}, features {features}), "
            f"global batch {args.batch}, {args.epochs} epochs x {args.iterations} iterations, seed {args.seed}; "
            f"one torch thread and one loader thread per process, gloo. Machine: {platform.machine()}, "
            f"{os.cpu_count()} CPU core(s) shared with other work (load average column), torch {torch.__version__}.\n\n"
            "| processes | per-process batch | samples/s (training, wall) | speed-up (wall) | "
            "samples per CPU-s of the busiest process | speed-up (CPU) | s per epoch (training) | "
            "wall s (incl. start-up, validation) | final val mean Dice | load avg before |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    for row in rows:
        from lgeseg.training.distributed import split_batch

        split = "/".join(str(b) for b in sorted(set(split_batch(args.batch, row["processes"]))))
        text += (f"| {row['processes']} | {split} | {row['samples_per_s']:.1f} | {row['samples_per_s'] / base:.2f}x | "
                 f"{row['samples_per_cpu_s']:.1f} | {row['samples_per_cpu_s'] / base_cpu:.2f}x | "
                 f"{row['train_s_per_epoch']:.1f} | {row['wall_s']:.0f} | {row['val_mean_dice']:.3f} | "
                 f"{row['load_before']:.1f} |\n")
    return text


def write_section(text: str, key: str = "ddp_scaling") -> None:
    """Replace the block between ``<!-- key:begin -->`` and ``<!-- key:end -->`` in docs/scaling.md (or append)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    old = SCALING.read_text() if SCALING.exists() else "# Scaling out\n"
    block = f"{begin}\n{text}{end}\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    SCALING.write_text(new)


def main(argv: list[str] | None = None) -> int:
    """Prepare data, train once per process count, print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", type=int, default=10, help="synthetic cases (80% train, 20% validation)")
    parser.add_argument("--batch", type=int, default=8, help="global batch (slices per optimizer step)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10, help="iterations per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/scaling.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        pre = prepare(work, args.cases)
        rows = [train_once(pre, work / f"model_{n}_{int(time.time())}", n, args) for n in args.processes]
        plan = json.loads((pre / "plans.json").read_text())
    text = markdown(rows, args, plan)
    print(text)
    print(json.dumps(rows, indent=1))
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
