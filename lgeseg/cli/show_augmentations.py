"""``lgeseg_show_augmentations DATASET --preset P -o grid.png``: preview an augmentation preset."""

from __future__ import annotations

import argparse
import logging

from lgeseg.augmentation import DEFAULT_PRESET, list_presets
from lgeseg.augmentation.preview import render_augmentation_grid
from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import command_parser


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "lgeseg_show_augmentations",
        "Augment one slice of a raw dataset many times and save a grid PNG with label contours.")
    parser.add_argument("dataset", help="raw dataset folder (nnU-Net v2 layout)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list_presets(), help="augmentation preset")
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.add_argument("--case", default=None, help="case id (default: first labelled case)")
    parser.add_argument("--slice", type=int, default=None, help="z index (default: slice with most foreground)")
    parser.add_argument("--n", type=int, default=16, help="number of augmented tiles (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--patch", type=int, nargs=2, default=None, metavar=("Y", "X"), help="tile size in voxels")
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns 0 on success, 2 for bad input (message on stderr)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    return run_command(parser, args, _run, logging.WARNING, "%(levelname)s %(message)s")


def _run(args: argparse.Namespace) -> int:
    path = render_augmentation_grid(args.dataset, args.output, args.preset, args.case, args.slice, args.n,
                                    args.seed, tuple(args.patch) if args.patch else None)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
