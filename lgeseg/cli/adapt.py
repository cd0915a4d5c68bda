"""``lgeseg_adapt``: adapt a model to a new center from its unlabeled images (self-training on pseudo-labels)."""

from __future__ import annotations

import argparse

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_device_option, add_overwrite_flag, command_parser
from lgeseg.workflows.self_training import DEFAULT_EPOCHS, DEFAULT_ITERATIONS, DEFAULT_ROUNDS, adapt_to_center
from lgeseg.workflows.uncertain_voxels import DEFAULT_CONFIDENCE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lgeseg_adapt``."""
    parser = command_parser(
        "lgeseg_adapt",
        "Adapt a model to a new hospital that has images but no annotations: the model segments the "
        "images, the cases its quality checks flag are dropped, and every member is fine-tuned on the "
        "rest (pseudo-labels), mixed with labelled --source data when given. The images are only read. "
        "Predict with the result: lgeseg_predict -m OUTPUT (docs/adaptation.md).")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder, ensemble folder or name (lge-lv, lge-lv-cine: "
                             "lgeseg_predict --list-models)")
    parser.add_argument("-i", "--input", required=True, help="the new center's images (as lgeseg_predict -i)")
    parser.add_argument("-o", "--output", required=True,
                        help="folder to create: pseudo-labels, their dataset and the adapted members fold_<k>")
    parser.add_argument("-s", "--source", action="append", default=[], metavar="PREPROCESSED",
                        help="labelled data preprocessed with the model's plans, mixed into every batch (e.g. the "
                             "model's training data); repeat for several. Recommended: without it the model sees "
                             "only its own pseudo-labels")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"epochs per member (default {DEFAULT_EPOCHS})")
    parser.add_argument("--iterations-per-epoch", type=int, default=DEFAULT_ITERATIONS,
                        help=f"optimizer steps per epoch (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's recipe's)")
    parser.add_argument("--train", dest="trainable", default="all", metavar="all|encoder:K|decoder:K",
                        help="blocks to fine-tune (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds fine-tuning (member k uses seed + k)")
    add_device_option(parser)
    parser.add_argument("--keep-flagged", action="store_true",
                        help="also train on the pseudo-labels the quality checks flag (default: dropped)")
    parser.add_argument("--mask-uncertain", dest="uncertain_voxels", action="store_const", const="mask",
                        default="mask",
                        help="give the voxels where the teacher is unsure (averaged top class probability below "
                             "--confidence, near its predicted heart) the ignore label, which the student's loss "
                             "skips, and keep the cases flagged only mirror_unstable (the default; "
                             "docs/adaptation.md)")
    parser.add_argument("--no-mask-uncertain", dest="uncertain_voxels", action="store_const", const="keep",
                        help="train on the teacher's labels everywhere and drop every flagged case")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                        help=f"with --mask-uncertain: a voxel is unsure below this averaged top class probability "
                             f"(default {DEFAULT_CONFIDENCE})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="rounds of self-training: round r > 1 is taught by round r - 1's adapted model, kept "
                             f"in OUTPUT/rounds/round_<r> (default {DEFAULT_ROUNDS})")
    add_overwrite_flag(parser, "redo a finished adaptation in --output")
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg_adapt``; returns the exit code (0 success, 1 error on stderr, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 < args.confidence <= 1.0:
        parser.error(f"--confidence must be in (0, 1], found {args.confidence}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, found {args.rounds}")
    if args.epochs < 1 or args.iterations_per_epoch < 1:
        parser.error(f"--epochs and --iterations-per-epoch must be >= 1, found {args.epochs} and "
                     f"{args.iterations_per_epoch}")
    return run_command(parser, args, _run)


def _run(args: argparse.Namespace) -> int:
    out = adapt_to_center(args.model, args.input, args.output, source=args.source, epochs=args.epochs,
                          iterations_per_epoch=args.iterations_per_epoch, lr=args.lr, trainable=args.trainable,
                          device=args.device, seed=args.seed, keep_flagged=args.keep_flagged,
                          overwrite=args.overwrite, uncertain_voxels=args.uncertain_voxels,
                          confidence=args.confidence, rounds=args.rounds)
    print(f"adapted model: {out}; predict with: lgeseg_predict -i IN -o OUT -m {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
