"""``lgeseg_experiments``: the paper's four domain-generalization experiments (its Table 5) in one run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lgeseg.experiments.paper import PaperExperimentsConfig, format_table, run_paper_experiments

_DEFAULTS = PaperExperimentsConfig(out_dir=Path("."))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgeseg_experiments",
        description="Train on one center and measure, on held-out cases of every center, the paper's experiments: "
                    "(1) augmentation, (2) histogram matching / CycleGAN, (3) transfer learning, (4) multi-center "
                    "training. Default data: the embedded synthetic centers. Finished steps are reused on rerun.")
    parser.add_argument("-o", "--out", type=Path, required=True, help="work folder (data, models, results)")
    parser.add_argument("-e", "--experiments", type=int, nargs="+", choices=(1, 2, 3, 4),
                        default=list(_DEFAULTS.experiments), help="which experiments (default: all)")
    parser.add_argument("--raw", type=Path, default=None,
                        help="real data: folder with one raw dataset per center (training cases)")
    parser.add_argument("--test", type=Path, default=None,
                        help="real data: folder with the same centers' test datasets")
    parser.add_argument("--train-center", default=_DEFAULTS.train_center,
                        help="dataset folder name of the training center (default: %(default)s)")
    parser.add_argument("--cases-per-center", type=int, default=_DEFAULTS.cases_per_center,
                        help="synthetic training cases per center (default: %(default)s)")
    parser.add_argument("--test-cases-per-center", type=int, default=_DEFAULTS.test_cases_per_center,
                        help="synthetic test cases per center (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="epochs per model (default: %(default)s)")
    parser.add_argument("--iterations-per-epoch", type=int, default=_DEFAULTS.iterations_per_epoch)
    parser.add_argument("--train-minutes", type=float, default=None, help="time budget per model, minutes")
    parser.add_argument("--finetune-blocks", default=_DEFAULTS.finetune_blocks,
                        help="experiment 3: encoder:K, decoder:K, encoder:all or all (default: %(default)s)")
    parser.add_argument("--finetune-cases", type=int, default=_DEFAULTS.finetune_cases)
    parser.add_argument("--finetune-epochs", type=int, default=_DEFAULTS.finetune_epochs)
    parser.add_argument("--harmonization", nargs="+", choices=("histogram", "cyclegan"),
                        default=list(_DEFAULTS.harmonization), help="experiment 2 methods (default: both)")
    parser.add_argument("--gan-epochs", type=int, default=_DEFAULTS.gan_epochs)
    parser.add_argument("--gan-iterations", type=int, default=_DEFAULTS.gan_iterations)
    parser.add_argument("--gan-patch", type=int, default=_DEFAULTS.gan_patch, help="CycleGAN patch, voxels")
    parser.add_argument("--preset", default=None, help="planner preset (default: cpu on the CPU, else default)")
    parser.add_argument("--mirroring", action="store_true", help="flip test-time augmentation when predicting")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: best available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the experiments and print the Table 5-style Dice table. Returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = PaperExperimentsConfig(
        out_dir=args.out, experiments=tuple(args.experiments), train_center=args.train_center, raw_dir=args.raw,
        test_dir=args.test, cases_per_center=args.cases_per_center, test_cases_per_center=args.test_cases_per_center,
        preset=args.preset, epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        train_minutes=args.train_minutes, finetune_blocks=args.finetune_blocks, finetune_cases=args.finetune_cases,
        finetune_epochs=args.finetune_epochs, harmonization=tuple(args.harmonization), gan_epochs=args.gan_epochs,
        gan_iterations=args.gan_iterations, gan_patch=args.gan_patch, mirroring=args.mirroring, seed=args.seed,
        device=args.device)
    try:
        results = run_paper_experiments(config)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(1, f"lgeseg_experiments: error: {err}\n")
    print(f"\nMean 3D Dice (blood pool, myocardium) on held-out test cases, trained on {args.train_center}:\n")
    print(format_table(results, args.train_center))
    print(f"\nResults: {args.out / 'results.json'} and {args.out / 'table.md'}")
    return 0
