"""``lgeseg_validate DATASET [DATASET ...]``: check raw datasets and report every problem."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli import dataset_folder
from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_workers_option, command_parser
from lgeseg.datasets.validate import count_problems, format_problems, validate_dataset


def main(argv: list[str] | None = None) -> int:
    """Validate each dataset, print its problems and a summary.

    Returns:
        1 if any dataset has an error, else 0 (warnings alone give 0).
    """
    parser = command_parser(
        "lgeseg_validate",
        "Check raw datasets (nnU-Net v2 layout) and report every problem at once. "
        "Never modifies the datasets. Exit code 1 on errors, 0 otherwise (warnings allowed).")
    parser.add_argument("datasets", nargs="+", metavar="DATASET",
                        help="raw dataset folder(s), or nnU-Net dataset ids (4, Dataset004_Name) under $nnUNet_raw")
    parser.add_argument("--headers-only", action="store_true",
                        help="check names, headers and geometry only; skip reading voxel data (fast)")
    add_workers_option(parser, "threads reading files in parallel (default 1)", default=1, extra=("--workers",),
                       minimum=1)
    parser.add_argument("--allow-unusual-spacing", action="store_true",
                        help="accept voxel spacing outside 0.1-20 mm in-plane / 0.5-30 mm through-plane")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_command(parser, args, _run, logging.WARNING, "%(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace) -> int:
    total_errors = total_warnings = 0
    for spec in args.datasets:
        dataset = dataset_folder(spec)
        problems = validate_dataset(dataset, check_images=not args.headers_only, num_workers=args.num_workers,
                                    allow_unusual_spacing=args.allow_unusual_spacing)
        errors, warnings = count_problems(problems)
        total_errors += errors
        total_warnings += warnings
        print(f"{dataset}: {errors} error(s), {warnings} warning(s)")
        if problems:
            print("  " + format_problems(problems, root=dataset).replace("\n", "\n  "))
    verdict = "FAILED" if total_errors else "OK"
    print(f"{verdict}: {len(args.datasets)} dataset(s) checked, {total_errors} error(s), {total_warnings} warning(s)")
    return 1 if total_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
