"""Accuracy of a time-limited training run on held-out cases, written to docs/RESULTS.md.

Two experiments, each the whole pipeline (plan, preprocess, train, predict on the raw grid, evaluate):

* ``synthetic``: train on synthetic center 1 (``lgeseg.synth``, seed 0), test on other center-1
  cases (seed 1). Target: mean Dice (blood pool, myocardium) >= 0.85 within 15 CPU-minutes.
* ``acdc``: the cine data in ``../shared/data/acdc_cine``, 80/20 split by patient (seeded).
  Target: whole-LV Dice >= 0.85 on the held-out patients within 30 CPU-minutes.

    nice -n 10 python benchmarks/train_accuracy.py synthetic --minutes 15
    nice -n 10 python benchmarks/train_accuracy.py acdc --minutes 30
    python benchmarks/train_accuracy.py synthetic --cases 4 --test-cases 2 --minutes 0.2 --no-write  # smoke test
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS_MD, ROOT, link_subset, synthetic_centers, write_section

from lgeseg.core.device import resolve_device
from lgeseg.experiments.scoring import predict_and_score
from lgeseg.training import read_model_metadata, train
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess


def prepare_synthetic(work: Path, cases: int, test_cases: int) -> tuple[Path, Path]:
    """Raw training (seed 0) and test (seed 1) datasets of synthetic center 1."""
    train_raw, test_raw = synthetic_centers(work, [1], cases, test_cases)
    return train_raw[1], test_raw[1]


def prepare_acdc(work: Path, data: Path, seed: int = 0) -> tuple[Path, Path]:
    """80/20 split of the ACDC cine cases by patient into two symlinked raw datasets."""
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (data / "imagesTr").glob("*_0000.nii.gz"))
    patients = sorted({re.sub(r"_frame\d+$", "", c) for c in cases})
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    test_patients = set(order[: max(1, round(0.2 * len(order)))])
    test = [c for c in cases if re.sub(r"_frame\d+$", "", c) in test_patients]
    trainval = [c for c in cases if c not in test]
    return link_subset(data, work / "raw_train" / "acdc", trainval), link_subset(data, work / "raw_test" / "acdc", test)


def run(args: argparse.Namespace) -> dict:
    """Plan, preprocess, train (time-limited), predict and evaluate; returns the numbers."""
    work = Path(args.work or ROOT / "runs" / f"accuracy_{args.experiment}")
    if args.experiment == "synthetic":
        train_raw, test_raw = prepare_synthetic(work, args.cases, args.test_cases)
    else:
        train_raw, test_raw = prepare_acdc(work, Path(args.data))
    device = str(resolve_device(args.device))
    preset = "cpu" if device == "cpu" else "default"
    start = time.perf_counter()
    plan, _ = plan_and_preprocess([train_raw], work / "pre", preset=preset, num_workers=1)
    preprocess_s = time.perf_counter() - start
    model_dir = work / f"model_{int(time.time())}"
    start = time.perf_counter()
    train(work / "pre", model_dir, recipe="default", epochs=args.epochs, iterations_per_epoch=args.iterations,
          device=device, max_minutes=args.minutes, seed=args.seed)
    train_s = time.perf_counter() - start
    score = predict_and_score(test_raw / "imagesTr", test_raw, [model_dir], work / "pred", work / "eval",
                              device=device, mirroring=args.mirroring)
    summary, dice, predict_s = score.summary, score.dice, score.predict_seconds
    _, info = read_model_metadata(model_dir)
    return {
        "experiment": args.experiment, "device": device, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "patch": list(plan.patch_size),
        "batch": plan.batch_size, "features": list(plan.topology.features_per_stage),
        "epochs": info.epochs_trained, "iterations_per_epoch": args.iterations,
        "train_cases": info.extras["train_cases"], "val_cases": info.extras["val_cases"],
        "test_cases": summary["n_cases"], "dice": dice,
        "mean_dice_bp_myo": (dice["blood_pool"] + dice["myocardium"]) / 2,
        "val_best": info.extras["best_val_mean_dice"],
        "postprocessing": info.postprocessing, "preprocess_s": preprocess_s, "train_s": train_s,
        "predict_s": predict_s, "mirroring": args.mirroring, "model_dir": str(model_dir),
    }


def markdown(result: dict, command: str) -> str:
    """The RESULTS.md section for one experiment."""
    d = result["dice"]
    title = {"synthetic": "Training accuracy: synthetic center 1 (held-out cases)",
             "acdc": "Training accuracy: ACDC cine, 80/20 by patient (held-out patients)"}[result["experiment"]]
    return (
        f"## {title}\n\n`{command}`\n\n"
        f"Device {result['device']} ({result['threads']} torch threads, {result['cpus']} CPUs, shared); plan: patch "
        f"{result['patch'][0]}x{result['patch'][1]}, batch {result['batch']}, features {result['features']}; "
        f"recipe paper, {result['epochs']} epochs x {result['iterations_per_epoch']} iterations in "
        f"{result['train_s'] / 60:.1f} min (preprocessing {result['preprocess_s']:.0f} s, prediction "
        f"{result['predict_s']:.0f} s, mirroring {'on' if result['mirroring'] else 'off'}); "
        f"{result['train_cases']} training / {result['val_cases']} validation / "
        f"{result['test_cases']} test cases; postprocessing {result['postprocessing']}.\n\n"
        "| structure | Dice (mean over test cases) |\n|---|---|\n"
        f"| blood pool | {d['blood_pool']:.3f} |\n| myocardium | {d['myocardium']:.3f} |\n"
        f"| whole LV | {d['lv']:.3f} |\n"
        f"| mean (blood pool, myocardium) | {result['mean_dice_bp_myo']:.3f} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one experiment and write its section of docs/RESULTS.md (unless --no-write)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["synthetic", "acdc"])
    parser.add_argument("--work", default=None, help="work folder (default runs/accuracy_<experiment>)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "acdc_cine"))
    parser.add_argument("--cases", type=int, default=40, help="synthetic training cases")
    parser.add_argument("--test-cases", type=int, default=20, help="synthetic test cases")
    parser.add_argument("--minutes", type=float, default=None, help="training budget (default 15 synthetic, 30 acdc)")
    parser.add_argument("--epochs", type=int, default=1000, help="upper bound; the time budget usually ends first")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per epoch")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirroring", action="store_true", help="flip test-time augmentation (4x prediction time)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/RESULTS.md")
    args = parser.parse_args(argv)
    if args.minutes is None:
        args.minutes = 15.0 if args.experiment == "synthetic" else 30.0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(args)
    command = "python benchmarks/train_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(result, command)
    print(text)
    print(json.dumps(result, indent=1))
    if not args.no_write:
        write_section(RESULTS_MD, text, f"train_accuracy_{args.experiment}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
