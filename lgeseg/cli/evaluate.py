"""``lgeseg_evaluate``: 3D Dice, HD95, volumes and clinical indices of predictions against references."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli import dataset_folder
from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.evaluation.metrics import check_evaluation_output, evaluate_folders, find_labels, format_table


def main(argv: list[str] | None = None) -> int:
    """Parse ``--pred PRED_DIR -r REF_DIR -o OUT_DIR``, evaluate, print the table. Returns the exit code."""
    parser = command_parser(
        "lgeseg_evaluate",
        "Evaluate predicted label maps against references (paired by case id); writes metrics.csv "
        "and summary.json to the output folder and prints a summary table.")
    parser.add_argument("--pred", "--predictions", dest="predictions", default=None, metavar="PRED_DIR",
                        help="folder of predicted <case>.nii.gz files (required)")
    # the old spelling, kept; elsewhere -p is the preprocessed folder
    parser.add_argument("-p", dest="predictions", help=argparse.SUPPRESS)
    parser.add_argument("-r", "--references", required=True,
                        help="folder of reference <case>.nii.gz files, or a raw dataset with labelsTr/ (a folder "
                             "or an nnU-Net dataset id under $nnUNet_raw)")
    parser.add_argument("--dataset-json", "-djfile", default=None, metavar="FILE",
                        help="dataset.json whose labels are scored (default: the one in -r, else in -p, else "
                             "lgeseg's labels 1 blood pool, 2 myocardium); region labels are scored as unions")
    parser.add_argument("-o", "--output", required=True,
                        help="folder for metrics.csv and summary.json (not the -p or -r folder, nor inside them)")
    add_overwrite_flag(parser, "replace metrics.csv and summary.json already in the output folder (otherwise refused)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.predictions is None:
        parser.error("the following arguments are required: --pred/--predictions")
    return run_command(parser, args, _run, logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    references = dataset_folder(args.references)
    check_evaluation_output(args.predictions, references, args.output, args.overwrite)  # before any work
    labels, source = find_labels(args.predictions, references, args.dataset_json)
    if source is not None:
        print(f"labels from {source}: {labels}")
    summary = evaluate_folders(args.predictions, references, args.output, labels, overwrite=args.overwrite)
    print(format_table(summary))
    print(f"metrics.csv and summary.json written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
