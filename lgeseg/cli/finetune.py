"""``lgeseg_finetune``: fine-tune a trained model on a new center's preprocessed data."""

from __future__ import annotations

import argparse

from lgeseg.cli._errors import add_verbose_flag, positive_int, run_command
from lgeseg.cli._options import (
    add_device_option,
    add_resume_options,
    add_time_budget_option,
    add_workers_option,
    check_resume_options,
    command_parser,
)
from lgeseg.training.finetune import DEFAULT_FINETUNE_EPOCHS, finetune


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lgeseg_finetune``."""
    parser = command_parser(
        "lgeseg_finetune",
        "Fine-tune the blocks of a pretrained model on a few cases of a new center (transfer "
        "learning). Preprocess the new center first with: lgeseg_plan_and_preprocess -d NEW "
        "-o OUT --plans-from PRETRAINED_MODEL")
    parser.add_argument("-m", "--model", required=True, help="pretrained model folder")
    parser.add_argument("-p", "--preprocessed", action="append", required=True,
                        help="the new center's preprocessed folder (made with the model's plans)")
    parser.add_argument("-o", "--output", required=True,
                        help="model folder to create (not the pretrained model folder, nor inside it)")
    parser.add_argument("-d", "--dataset", action="append", default=None, help="dataset(s) to use (default: all)")
    parser.add_argument("--train", dest="trainable", default=None, metavar="all|encoder:K|decoder:K",
                        help="blocks to train; all others are frozen (default: encoder:5, the paper's "
                             "recommendation, when the network has five or more encoder blocks, else all)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--cases", type=int, default=None, help="train on this many subjects of the new center")
    amount.add_argument("--fraction", type=float, default=None, help="train on this share of its subjects")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"epochs, >= 1 (default {DEFAULT_FINETUNE_EPOCHS})")
    parser.add_argument("--iterations-per-epoch", type=int, default=None, help="default: the pretrained recipe's")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the pretrained recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="picks the cases and seeds training (default 0)")
    add_device_option(parser, what="training device")
    add_workers_option(parser, "batch-assembling threads (default min(2, CPUs))")
    add_time_budget_option(parser)
    add_resume_options(parser, "resume an interrupted run")
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg_finetune``; returns the exit code (0 success, 1 error on stderr, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_resume_options(parser, args)
    return run_command(parser, args, _run)


def _run(args: argparse.Namespace) -> int:
    model_dir = finetune(
        args.model, args.preprocessed, args.output, trainable=args.trainable, cases=args.cases,
        fraction=args.fraction, epochs=args.epochs, lr=args.lr, seed=args.seed, datasets=args.dataset,
        resume=args.resume, overwrite=args.overwrite, iterations_per_epoch=args.iterations_per_epoch,
        device=args.device, num_workers=args.num_workers, max_minutes=args.time_budget,
    )
    print(f"model folder: {model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
