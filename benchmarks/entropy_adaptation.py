"""Does test-time entropy minimization (``lgeseg_predict --adapt entropy``, TENT) help on real LGE?

Predicts every case of a real LGE dataset with each model, once with the trained weights and once
adapted to each case (``lgeseg.inference.adaptation``, default steps and learning rate, chosen before
this measurement), with ``lgeseg_predict``'s other defaults (roi window, mirroring, the model's
postprocessing), scores both with ``lgeseg_evaluate``'s code (3D Dice per case) and writes the
docs/RESULTS.md section ``test_time_adaptation`` (unless --no-write): mean ± SD Dice per structure,
seconds per case, and how many cases adaptation made better or worse.

    OMP_NUM_THREADS=1 python benchmarks/entropy_adaptation.py \\
        --model runs/real_lge/models/cine_lge_dg_e20x50 --model runs/real_lge/models/cine_spatial_intensity_e20x50

A finished run (``WORK/<model>_<adapt>/result.json``) is read back instead of predicted again, so the
section can be rewritten without recomputing. myops_lge is a development set: nothing here is tuned to it.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import sys
from pathlib import Path

from _common import RESULTS_MD, ROOT, write_section

from lgeseg.inference.adaptation import DEFAULT_LR, DEFAULT_STEPS

STRUCTURES = (("blood_pool", "blood pool"), ("myocardium", "myocardium"), ("lv", "whole LV"))
ADAPTS = ("none", "entropy")


def run(model: Path, data: Path, work: Path, adapt: str, steps: int, lr: float, device: str) -> dict:
    """Predict and score ``data/imagesTr`` with ``model`` and ``adapt``; returns (and caches) the result record.

    The record holds ``cases`` (case -> {structure: Dice}), ``seconds`` (prediction wall time, model
    loading included, Python start-up not) and ``n_cases``.
    """
    folder = work / f"{model.name}_{adapt}"
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    from lgeseg.experiments.scoring import predict_and_score  # deferred: imports torch

    score = predict_and_score(data / "imagesTr", data, [model], folder / "pred", folder / "eval", device=device,
                              adapt=adapt, adapt_steps=steps, adapt_lr=lr)
    with open(folder / "eval" / "metrics.csv", newline="") as handle:
        cases = {row["case"]: {key: float(row[f"dice_{key}"]) for key, _ in STRUCTURES}
                 for row in csv.DictReader(handle)}
    record = {"model": str(model), "adapt": adapt, "steps": steps, "lr": lr, "device": device,
              "threads": os.environ.get("OMP_NUM_THREADS", "default"), "seconds": score.predict_seconds,
              "n_cases": len(cases), "cases": cases}
    result_file.write_text(json.dumps(record, indent=1))
    return record


#: A case whose whole-LV Dice is below this missed the ventricle (segmented something else, or nothing).
MISS_DICE = 0.05


def _mean_sd(values: list[float]) -> str:
    """Mean ± population SD (as ``lgeseg_evaluate``'s summary)."""
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def _change(base: dict, adapted: dict, key: str) -> str:
    """Mean paired change of ``key`` Dice, cases better / worse by more than 0.01, and the largest drop."""
    deltas = {case: adapted["cases"][case][key] - base["cases"][case][key] for case in base["cases"]}
    better = sum(d > 0.01 for d in deltas.values())
    worse = sum(d < -0.01 for d in deltas.values())
    worst = min(deltas, key=deltas.__getitem__)
    return (f"{statistics.fmean(deltas.values()):+.3f} ({better} better, {worse} worse; "
            f"largest drop {worst} {deltas[worst]:+.3f})")


def section(results: dict[str, dict[str, dict]], data: Path, steps: int, lr: float) -> str:
    """The markdown section: the Dice table per model and adaptation, then the paired changes."""
    first = next(iter(next(iter(results.values())).values()))
    lines = [
        f"## Test-time adaptation by entropy minimization on real LGE ({data.name}, {first['n_cases']} patients)",
        "",
        "`python benchmarks/entropy_adaptation.py` (issue 12). Each model predicts every patient with "
        "`lgeseg_predict` defaults (roi window, mirroring, the model's postprocessing), once as trained "
        f"(`--adapt none`) and once adapted to each patient (`--adapt entropy`: {steps} Adam steps, lr {lr:g}, "
        "minimizing the mean softmax entropy over the patient's whole slices, only the InstanceNorm scale and "
        "shift trainable, weights restored after each patient; TENT's settings, chosen before this run). "
        f"3D Dice per patient, mean ± SD; misses: patients with whole-LV Dice below {MISS_DICE}. "
        "Seconds per case: prediction wall time of the folder / cases "
        f"(model loading included, Python start-up not), device {first['device']}, "
        f"OMP_NUM_THREADS={first['threads']}, on 2 CPU cores shared with other jobs (an upper bound).",
        "",
        "| model | adaptation | blood pool | myocardium | whole LV | misses | seconds per case |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        for adapt, record in runs.items():
            cells = [_mean_sd([c[key] for c in record["cases"].values()]) for key, _ in STRUCTURES]
            misses = sum(c["lv"] < MISS_DICE for c in record["cases"].values())
            lines.append(f"| {name} | {adapt} | {' | '.join(cells)} | {misses} | "
                         f"{record['seconds'] / record['n_cases']:.1f} |")
    lines += ["", "Paired change per patient (entropy minus none; better / worse: by more than 0.01 Dice):", "",
              "| model | blood pool | myocardium | whole LV |", "|---|---|---|---|"]
    for name, runs in results.items():
        if set(ADAPTS) <= set(runs):
            cells = [_change(runs["none"], runs["entropy"], key) for key, _ in STRUCTURES]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments (see ``--help``), run the missing predictions and write the section; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, type=Path, help="model folder; repeat")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "myops_lge",
                        help="raw dataset with imagesTr and labelsTr (default ../shared/data/myops_lge)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "entropy_adaptation",
                        help="predictions, metrics and cached results")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="Adam steps per case")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.data / "imagesTr").is_dir():
        parser.exit(1, f"{args.data}: no imagesTr folder (a raw dataset with labelsTr is needed)\n")
    results = {model.name: {adapt: run(model, args.data, args.work, adapt, args.steps, args.lr, args.device)
                            for adapt in ADAPTS} for model in args.model}
    text = section(results, args.data, args.steps, args.lr)
    print(text)
    if not args.no_write:
        write_section(RESULTS_MD, text, "test_time_adaptation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
