"""Fine-tuning learning rate on the synthetic centers: the parent's rate against lower ones (issue 12).

The fine-tuning learning rate must not be chosen from the 25 real myops_lge patients alone (they are
the development set), so this benchmark measures it where the target centers are synthetic: a model
pretrained on synthetic center 1 (with the default augmentation) is fine-tuned with ``lgeseg_finetune``'s
default trainable blocks on 1 and 3 cases of each other center, once per ``--lrs`` value (the same
cases for every rate: a paired comparison), and scored on held-out cases of that center (seed 1,
raw grid, no mirroring). Writes the ``finetune_lr`` section of docs/RESULTS.md.

    nice -n 10 python benchmarks/finetune_lr.py --work runs/finetune_lr
    python benchmarks/finetune_lr.py --cases 4 --test-cases 1 --centers 2 --pretrain-epochs 1 \\
        --epochs 1 --iterations 1 --target-cases 1 --no-write          # smoke test
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from _common import (
    Stopwatch,
    add_synthetic_center_options,
    bp_myo_dice,
    finetune_and_score,
    markdown_table,
    pretrain_center1,
    publish_section,
    synthetic_centers,
)

from lgeseg.core.device import resolve_device
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess


def sweep(args: argparse.Namespace) -> dict:
    """Pretrain on center 1, fine-tune per center, case count and rate; returns Dice (mean BP/myo) and timings."""
    work, device = Path(args.work), str(resolve_device(args.device))
    train_raw, test_raw = synthetic_centers(work, [1, *args.centers], args.cases, args.test_cases)
    clock = Stopwatch()
    base = pretrain_center1(work, train_raw[1], device, epochs=args.pretrain_epochs,
                            iterations_per_epoch=args.iterations, seed=args.seed, num_workers=args.num_workers)
    parent_lr = json.loads((base / "model.json").read_text())["recipe"]["learning_rate"]
    results: dict = {"device": device, "threads": torch.get_num_threads(), "parent_lr": parent_lr, "baseline": {},
                     "dice": {}}
    for center in args.centers:
        pre = work / f"pre{center}"
        plan_and_preprocess([train_raw[center]], pre, plans_from=base)
        results["baseline"][str(center)] = bp_myo_dice(base, test_raw[center], work, device)
        for cases in args.target_cases:
            for lr in args.lrs:
                out = work / "models" / f"c{center}_n{cases}_lr{lr:g}"
                dice = finetune_and_score(base, pre, out, test_raw[center], work, device, cases=cases, lr=lr,
                                          epochs=args.epochs, iterations_per_epoch=args.iterations, seed=args.seed,
                                          num_workers=args.num_workers)
                results["dice"].setdefault(f"{center}/{cases}", {})[f"{lr:g}"] = dice
    return {**results, **clock.minutes()}


def markdown(results: dict, args: argparse.Namespace) -> str:
    """The RESULTS.md section: one row per (center, case count), one column per rate, and their means."""
    rates = [f"{lr:g}" for lr in args.lrs]
    rows: list[list[object]] = []
    for key, values in results["dice"].items():
        center, cases = key.split("/")
        rows.append([center, cases, f"{results['baseline'][center]:.3f}", *(f"{values[r]:.3f}" for r in rates)])
    baseline = sum(results["baseline"].values()) / len(results["baseline"])
    for cases in args.target_cases:
        by_center = [v for k, v in results["dice"].items() if k.endswith(f"/{cases}")]
        means = [sum(row[r] for row in by_center) / len(by_center) for r in rates]
        rows.append(["mean", cases, f"{baseline:.3f}", *(f"**{m:.3f}**" for m in means)])
    lines = markdown_table(["center", "target cases", "no fine-tuning", *(f"lr {r}" for r in rates)], rows)
    pretrain_iterations = args.pretrain_epochs * args.iterations
    return (
        "## Fine-tuning learning rate on the synthetic centers\n\n"
        f"`python benchmarks/finetune_lr.py {' '.join(args.argv)}` on {results['device']} ({results['threads']} torch "
        "thread(s), "
        f"CPU shared with other jobs): {results['wall_minutes']:.0f} wall minutes, {results['cpu_minutes']:.0f} CPU "
        f"minutes of this process. Parent: synthetic center 1, {args.cases} cases, `cpu` planner preset, default "
        f"recipe and augmentation (learning rate {results['parent_lr']:g}), {pretrain_iterations} iterations x "
        f"batch 8. Fine-tuning: `lgeseg_finetune`'s default trainable blocks, {args.epochs * args.iterations} "
        f"iterations x batch 8 on the same target cases (seed {args.seed}) at every rate. Test Dice (mean of "
        f"blood pool and myocardium) on {args.test_cases} held-out cases per center:\n\n" + "\n".join(lines) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and write the RESULTS.md section (unless --no-write)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synthetic_center_options(parser, "finetune_lr", cases=12, test_cases=5, epochs=3)
    parser.add_argument("--pretrain-epochs", type=int, default=12, help="center-1 epochs (default 12)")
    parser.add_argument("--target-cases", type=int, nargs="+", default=[1, 3], help="fine-tuning cases")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-4], help="fine-tuning learning rates")
    parser.add_argument("--num-workers", type=int, default=None, help="batch-assembling threads")
    parser.add_argument("--report-only", action="store_true",
                        help="write the section from WORK/results.json of an earlier run (its options)")
    args = parser.parse_args(argv)
    args.argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--no-write", "--report-only")]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    saved = Path(args.work) / "results.json"
    if args.report_only:
        results, no_write = json.loads(saved.read_text()), args.no_write
        args = parser.parse_args(results["argv"])
        args.argv, args.no_write = results["argv"], no_write
    else:
        results = {**sweep(args), "argv": args.argv}
        saved.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    publish_section(markdown(results, args), "finetune_lr", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
