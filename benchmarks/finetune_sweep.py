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
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import RESULTS_MD, ROOT, bp_myo_dice, trained, write_section  # noqa: E402

from lgeseg.device import resolve_device  # noqa: E402
from lgeseg.plan_and_preprocess import plan_and_preprocess  # noqa: E402
from lgeseg.synth import generate_multicenter  # noqa: E402
from lgeseg.training import finetune, train  # noqa: E402
from lgeseg.training.finetune import pick_target_cases  # noqa: E402


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
    centers = [1, *args.centers]
    train_raw = dict(zip(centers, generate_multicenter(work / "raw_train", args.cases, 0, centers), strict=True))
    test_raw = dict(zip(centers, generate_multicenter(work / "raw_test", args.test_cases, 1, centers), strict=True))
    cpu_start, start = time.process_time(), time.perf_counter()
    plan_and_preprocess([train_raw[1]], work / "pre1", preset="cpu" if device == "cpu" else "default")
    base = work / "models" / "pretrained"
    if not trained(base):
        train(work / "pre1", base, device=device, epochs=1000, iterations_per_epoch=args.iterations,
              max_minutes=args.pretrain_minutes)
    results: dict = {"device": device, "baseline": {}, "blocks": {}, "amounts": {}}
    for center in args.centers:
        pre = work / f"pre{center}"
        plan_and_preprocess([train_raw[center]], pre, plans_from=base)
        results["baseline"][center] = bp_myo_dice(base, test_raw[center], work, device)
        common = {"epochs": args.epochs, "iterations_per_epoch": args.iterations, "device": device, "seed": args.seed}
        done: dict[tuple, float] = {}  # (trainable, target cases) -> Dice: an identical run is not repeated
        for spec in args.blocks:
            out = work / "models" / f"c{center}_{spec.replace(':', '')}"
            if not trained(out):
                finetune(base, pre, out, trainable=spec, cases=args.block_cases, **common)
            dice = bp_myo_dice(out, test_raw[center], work, device)
            results["blocks"].setdefault(center, {})[spec] = dice
            done[(spec, training_keys(pre, {"cases": args.block_cases}, args.seed))] = dice
        for amount in args.amounts:
            same = (args.amount_train, training_keys(pre, amount_kwargs(amount), args.seed))
            if same not in done:
                out = work / "models" / f"c{center}_n{amount}"
                if not trained(out):
                    finetune(base, pre, out, trainable=args.amount_train, **amount_kwargs(amount), **common)
                done[same] = bp_myo_dice(out, test_raw[center], work, device)
            results["amounts"].setdefault(center, {})[amount] = done[same]
    results["wall_minutes"] = (time.perf_counter() - start) / 60
    results["cpu_minutes"] = (time.process_time() - cpu_start) / 60
    return results


def plot(results: dict, blocks: list[str], amounts: list[str], out_dir: Path) -> None:
    """Dice vs trained blocks (Figure 8) and vs amount of target data (Figure 10)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4))
    for center, values in results["blocks"].items():
        ax.plot(blocks, [values[b] for b in blocks], marker="o", label=f"center {center}")
        ax.axhline(results["baseline"][center], linestyle=":", color=ax.lines[-1].get_color())
    ax.set_xlabel("trained blocks (dotted: no fine-tuning)")
    ax.set_ylabel("test Dice (mean of blood pool, myocardium)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "finetune_blocks.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = ["1 case" if "." not in a else f"{float(a):.0%}" for a in amounts]
    for center, values in results["amounts"].items():
        ax.plot(labels, [values[a] for a in amounts], marker="o", label=f"center {center}")
    ax.set_xlabel("target-center training data")
    ax.set_ylabel("test Dice (mean of blood pool, myocardium)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "finetune_fraction.png", dpi=90)
    plt.close(fig)


def markdown(results: dict, args: argparse.Namespace) -> str:
    """The RESULTS.md section: baseline, block and amount tables, time used."""
    rows = ["| center | no fine-tuning | " + " | ".join(args.blocks) + " |",
            "|---|---|" + "---|" * len(args.blocks)]
    for center, values in results["blocks"].items():
        rows.append(f"| {center} | {results['baseline'][center]:.3f} | "
                    + " | ".join(f"{values[b]:.3f}" for b in args.blocks) + " |")
    amount_rows = ["| center | " + " | ".join(args.amounts) + " |", "|---|" + "---|" * len(args.amounts)]
    for center, values in results["amounts"].items():
        amount_rows.append(f"| {center} | " + " | ".join(f"{values[a]:.3f}" for a in args.amounts) + " |")
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
    parser.add_argument("--work", default=str(ROOT / "runs" / "finetune_sweep"))
    parser.add_argument("--cases", type=int, default=20, help="training cases per center")
    parser.add_argument("--test-cases", type=int, default=10, help="held-out cases per center")
    parser.add_argument("--centers", type=int, nargs="+", default=[2, 3, 4], help="target centers")
    parser.add_argument("--pretrain-minutes", type=float, default=15.0)
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--iterations", type=int, default=25, help="iterations per epoch")
    parser.add_argument("--blocks", nargs="+", default=["encoder:1", "encoder:2", "encoder:3", "encoder:4",
                                                        "encoder:5", "decoder:1", "decoder:2", "decoder:3",
                                                        "decoder:4", "all"])
    parser.add_argument("--block-cases", type=int, default=3)
    parser.add_argument("--amounts", nargs="+", default=["1", "0.1", "0.25", "0.5", "1.0"])
    parser.add_argument("--amount-train", default="all")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = sweep(args)
    print(json.dumps(results, indent=1))
    if not args.no_write:
        plot(results, args.blocks, args.amounts, ROOT / "docs" / "images")
        write_section(RESULTS_MD, markdown(results, args), "finetune_sweep")
    else:
        print(markdown(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
