"""``lgeseg_train``: train a 2D U-Net from preprocessed data into a model folder."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli._errors import add_verbose_flag, run_cli
from lgeseg.training.recipes import DEFAULT_RECIPE, available_recipes


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lgeseg_train``."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_train",
        description="Train a 2D U-Net (deep supervision, Dice + CE) on preprocessed data. Several -p folders "
                    "and/or -d datasets train one multi-center model with balanced sampling per dataset.",
    )
    parser.add_argument("-p", "--preprocessed", action="append", required=True,
                        help="preprocessed folder (from lgeseg_plan_and_preprocess); repeat for several")
    parser.add_argument("-o", "--output", required=True, help="model folder to create (or to continue)")
    parser.add_argument("-d", "--dataset", action="append", default=None,
                        help="dataset (center) to train on; repeat for several (default: all)")
    parser.add_argument("--recipe", choices=available_recipes(), default=None,
                        help=f"training recipe (default: {DEFAULT_RECIPE}: the paper's Adam 1e-3, 250 epochs, with "
                             "the extras of docs/paper.md; paper: the paper as written)")
    parser.add_argument("--augmentation", default=None, help="augmentation preset (default: the recipe's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None, help="optimizer steps per epoch")
    parser.add_argument("--batch-size", type=int, default=None, help="slices per batch (default: the plan's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    parser.add_argument("--device", "-device", choices=["cuda", "cpu", "mps"], default=None,
                        help="training device (default: best available)")
    parser.add_argument("--seed", type=int, default=None, help="seed of weights, sampling and augmentation")
    parser.add_argument("--subjects-per-center", type=int, default=None,
                        help="keep N subjects of every dataset (center), chosen reproducibly: equal counts per "
                             "center, the paper's Table 4 (default: all subjects, balanced sampling)")
    parser.add_argument("--fold", type=int, default=None, help="cross-validation fold 0-4 (default 0)")
    parser.add_argument("--num-workers", type=int, default=None, help="batch-assembling threads (default min(2, CPUs))")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="torch.compile the network (default: on for CUDA)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--continue", "--c", dest="resume", action="store_true",
                        help="resume from checkpoint_latest.pt in the output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model or checkpoints already in the output folder (otherwise refused)")
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg_train``; returns the exit code (0 success, 1 error on stderr, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_cli("lgeseg_train", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    from lgeseg.training import train

    model_dir = train(
        args.preprocessed, args.output, recipe=args.recipe, datasets=args.dataset, resume=args.resume,
        overwrite=args.overwrite, augmentation=args.augmentation, epochs=args.epochs,
        iterations_per_epoch=args.iterations_per_epoch, batch_size=args.batch_size, learning_rate=args.lr,
        device=args.device, seed=args.seed, fold=args.fold, subjects_per_center=args.subjects_per_center,
        num_workers=args.num_workers, compile=args.compile,
    )
    print(f"model folder: {model_dir}")
    return 0
