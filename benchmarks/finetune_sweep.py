"""Transfer learning sweep on the synthetic centers (the paper's Figures 8 and 10).

Pretrain on synthetic center 1, then fine-tune on each other center (its cases preprocessed with
the pretrained model's plans):

* blocks: ``encoder:1..N``, ``decoder:1..N`` and ``all`` with ``--block-cases`` target cases;
* amount: 1 case, 10%, 25%, 50%, 100% of the target's training cases, training ``--amount-train``.

A setting that picks the same trainable blocks and target cases as one already run (10% of 12
subjects is the 1-case run; 25% with ``all`` is the 3-case ``all`` run) reuses its result.

Every model is evaluated on held-out cases of the target center (seed 1) on the raw grid. Writes
``docs/images/finetune_blocks.png``, ``docs/images/finetune_fraction.png`` and a docs/RESULTS.md
section with the Dice tables and the CPU time used.

    nice -n 10 python benchmarks/finetune_sweep.py --pretrain-minutes 15 --epochs 10 --iterations 25
    python benchmarks/finetune_sweep.py --cases 4 --test-cases 1 --centers 2 --pretrain-minutes 0.1 \\
        --epochs 1 --iterations 1 --blocks encoder:1 all --amounts 1 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import (  # noqa: E402
    ROOT,
    Stopwatch,
    add_synthetic_center_options,
    bp_myo_dice,
    finetune_and_score,
    markdown_table,
    pretrain_center1,
    publish_section,
    synthetic_centers,
)

from lgeseg.core.device import resolve_device  # noqa: E402
from lgeseg.training.finetune import pick_target_cases  # noqa: E402
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess  # noqa: E402


def amount_kwargs(amount: str) -> dict:
    """``"1"`` -> one case; ``"0.25"`` -> a fraction of the subjects."""
    return {"cases": int(amount)} if "." not in amount else {"fraction": float(amount)}


def training_keys(pre: Path, amount: dict, seed: int) -> tuple[str, ...]:
    """The target cases ``finetune`` will pick in ``pre`` for ``amount`` (``{"cases": n}`` or ``{"fraction": f}``)."""
    keys = [f"{p.parent.name}/{p.stem}" for p in sorted(pre.glob("*/*.npz"))]
    return tuple(pick_target_cases(keys, seed=seed, **amount)[0])


def sweep(args: argparse.Namespace) -> dict:
    """Pretrain, then fine-tune per center, block spec and amount; returns all Dice values and timings."""
    work, device = Path(args.work), str(resolve_device(args.device))
    train_raw, test_raw = synthetic_centers(work, [1, *args.centers], args.cases, args.test_cases)
    clock = Stopwatch()
    base = pretrain_center1(work, train_raw[1], device, epochs=1000, iterations_per_epoch=args.iterations,
                            max_minutes=args.pretrain_minutes)
    results: dict = {"device": device, "baseline": {}, "blocks": {}, "amounts": {}}
    for center in args.centers:
        pre = work / f"pre{center}"
        plan_and_preprocess([train_raw[center]], pre, plans_from=base)
        results["baseline"][center] = bp_myo_dice(base, test_raw[center], work, device)
        common = {"epochs": args.epochs, "iterations_per_epoch": args.iterations, "seed": args.seed}
        done: dict[tuple, float] = {}  # (trainable, target cases) -> Dice: an identical run is not repeated
        for spec in args.blocks:
            out = work / "models" / f"c{center}_{spec.replace(':', '')}"
            dice = finetune_and_score(base, pre, out, test_raw[center], work, device, trainable=spec,
                                      cases=args.block_cases, **common)
            results["blocks"].setdefault(center, {})[spec] = dice
            done[(spec, training_keys(pre, {"cases": args.block_cases}, args.seed))] = dice
        for amount in args.amounts:
            same = (args.amount_train, training_keys(pre, amount_kwargs(amount), args.seed))
            if same not in done:
                out = work / "models" / f"c{center}_n{amount}"
                done[same] = finetune_and_score(base, pre, out, test_raw[center], work, device,
                                                trainable=args.amount_train, **amount_kwargs(amount), **common)
            results["amounts"].setdefault(center, {})[amount] = done[same]
    return {**results, **clock.minutes()}


def plot(results: dict, blocks: list[str], amounts: list[str], out_dir: Path) -> None:
    """Dice vs trained blocks (Figure 8) and vs amount of target data (Figure 10)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4))
    for center, values in results["blocks"].items():
        ax.plot(blocks, [values[b] for b in blocks], marker="o", label=f"center {center}")
        ax.axhline(results["baseline"][center], linestyle=":", color=ax.lines[-1].get_color())
    _save_dice_plot(fig, ax, "trained blocks (dotted: no fine-tuning)", out_dir / "finetune_blocks.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = ["1 case" if "." not in a else f"{float(a):.0%}" for a in amounts]
    for center, values in results["amounts"].items():
        ax.plot(labels, [values[a] for a in amounts], marker="o", label=f"center {center}")
    _save_dice_plot(fig, ax, "target-center training data", out_dir / "finetune_fraction.png")


def _save_dice_plot(fig: plt.Figure, ax: plt.Axes, xlabel: str, path: Path) -> None:
    """Label ``ax`` (Dice on y, 0..1), write ``fig`` to ``path`` and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test Dice (mean of blood pool, myocardium)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(results: dict, args: argparse.Namespace) -> str:
    """The RESULTS.md section: baseline, block and amount tables, time used."""
    rows = markdown_table(["center", "no fine-tuning", *args.blocks],
                          ([center, f"{results['baseline'][center]:.3f}", *(f"{values[b]:.3f}" for b in args.blocks)]
                           for center, values in results["blocks"].items()))
    amount_rows = markdown_table(["center", *args.amounts],
                                 ([center, *(f"{values[a]:.3f}" for a in args.amounts)]
                                  for center, values in results["amounts"].items()))
    return (
        "## Fine-tuning a center-1 model on unseen synthetic centers\n\n"
        f"`python benchmarks/finetune_sweep.py {' '.join(args.argv)}` on {results['device']}: "
        f"{results['wall_minutes']:.0f} wall minutes, {results['cpu_minutes']:.0f} CPU minutes of this process.\n\n"
        f"Test Dice (mean of blood pool and myocardium, {args.test_cases} held-out cases per center) by trained "
        f"blocks, {args.block_cases} target case(s):\n\n" + "\n".join(rows) + "\n\n"
        f"By amount of target data (training {args.amount_train}):\n\n" + "\n".join(amount_rows) + "\n\n"
        "![Dice vs blocks](images/finetune_blocks.png) ![Dice vs amount](images/finetune_fraction.png)\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, plot, and write the RESULTS.md section (unless --no-write)."""
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synthetic_center_options(parser, "finetune_sweep", cases=20, test_cases=10, epochs=10)
    parser.add_argument("--pretrain-minutes", type=float, default=15.0)
    parser.add_argument("--blocks", nargs="+", default=["encoder:1", "encoder:2", "encoder:3", "encoder:4",
                                                        "encoder:5", "decoder:1", "decoder:2", "decoder:3",
                                                        "decoder:4", "all"])
    parser.add_argument("--block-cases", type=int, default=3)
    parser.add_argument("--amounts", nargs="+", default=["1", "0.1", "0.25", "0.5", "1.0"])
    parser.add_argument("--amount-train", default="all")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = sweep(args)
    print(json.dumps(results, indent=1))
    if not args.no_write:
        plot(results, args.blocks, args.amounts, ROOT / "docs" / "images")
    publish_section(markdown(results, args), "finetune_sweep", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
