"""``lgeseg_plan_and_preprocess``: validate -> fingerprint -> plan -> preprocess raw datasets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lgeseg.cli import dataset_folder, preprocessed_folder
from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, add_workers_option, command_parser, nnunet_configuration
from lgeseg.planning.planner_presets import PRESETS
from lgeseg.planning.report import format_plan_table


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "lgeseg_plan_and_preprocess",
        "Validate raw datasets, fingerprint them, plan the 2D U-Net for a memory budget and "
        "preprocess every case into OUT (plans.json, fingerprint.json, OUT/<dataset>/<case>.npz).")
    parser.add_argument("-d", "--dataset", action="extend", nargs="+", required=True,
                        help="raw dataset folder (nnU-Net v2 layout), or an nnU-Net dataset id (4, Dataset004_Name) "
                        "under $nnUNet_raw; several: -d A B or -d A -d B")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="preprocessed output folder (default for one dataset id with $nnUNet_preprocessed set: "
                        "$nnUNet_preprocessed/DatasetNNN_Name/lgesegPlans_2d, where lgeseg_train DATASET 2d FOLD "
                        "finds it)")
    parser.add_argument("-c", "--configuration", nargs="+", type=nnunet_configuration, default=["2d"], metavar="2d",
                        help="nnU-Net's configurations to preprocess: lgeseg has one, 2d")
    parser.add_argument("-pl", "--planner", default=None, metavar="PLANNER", help=argparse.SUPPRESS)
    parser.add_argument("--gpu-memory", "-gpu_memory_target", type=float, default=None, metavar="GB",
                        help="GPU memory budget in GB (default: free memory of the present GPU; "
                        "none: the 'cpu' preset)")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="planner preset")
    parser.add_argument("--normalization", choices=("minmax", "zscore"), default=None,
                        help="override the preset's normalization")
    parser.add_argument("--verify-memory", action="store_true",
                        help="run one training step on the GPU and shrink the batch until it fits")
    add_workers_option(parser, "parallel processes (default 1)", default=1, minimum=1)
    parser.add_argument("--plans-from", type=Path, default=None, metavar="MODEL_OR_PLANS",
                        help="reuse a plan instead of planning: a model or preprocessed folder, its plans.json, or "
                        "nnU-Net v2's nnUNetPlans.json (its 2d configuration: patch, spacing, normalization, network, "
                        "batch; labels from the dataset.json beside it)")
    parser.add_argument("--allow-unusual-spacing", action="store_true",
                        help="accept voxel spacing outside 0.1-20 mm in-plane / 0.5-30 mm through-plane")
    add_overwrite_flag(parser, "replace a preprocessed OUT made with another plan (its cases of that plan are removed; "
                               "other files stay); without it such a folder is refused")
    parser.add_argument("--verify_dataset_integrity", "--verify-dataset-integrity", action="store_true",
                        help="accepted for nnU-Net habits: lgeseg always validates the datasets first")
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns 0 on success, 1 on a user error (message on stderr)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.planner is not None:
        parser.error(f"-pl {args.planner}: lgeseg has no planner classes; its planner presets are --preset "
                     f"{', '.join(sorted(PRESETS))} (and --gpu-memory GB sets the budget)")
    return run_command(parser, args, _run, logging.INFO if args.verbose else logging.WARNING,
                       "%(levelname)s %(message)s")


def _run(args: argparse.Namespace) -> int:
    # deferred: the pipeline loads SimpleITK and SciPy; --help and usage errors start without them
    from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

    datasets = [dataset_folder(spec) for spec in args.dataset]
    output = args.output
    if output is None:
        if len(datasets) != 1:
            raise ValueError(f"-o is required with {len(datasets)} datasets (without it, one dataset's preprocessed "
                             "data goes to $nnUNet_preprocessed/DatasetNNN_Name/lgesegPlans_2d)")
        output = preprocessed_folder(args.dataset[0], raw_name=datasets[0].name)
    plan, paths = plan_and_preprocess(
        datasets, output, args.gpu_memory, args.preset, args.verify_memory,
        args.num_workers, args.plans_from, args.normalization, args.allow_unusual_spacing, args.overwrite,
    )
    print(format_plan_table(plan))
    print(f"\n{len(paths)} case(s) preprocessed into {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
