"""``lgeseg_synth``: write the synthetic multi-center LGE phantom (one raw dataset per center)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.core.errors import OutputConflictError
from lgeseg.synth import generate_multicenter, write_montage
from lgeseg.synth.multicenter import check_center_folders


def _centers(text: str) -> tuple[int, ...]:
    try:
        centers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--centers expects numbers like 1,2,3,4, found {text!r}") from err
    if not centers or any(c not in (1, 2, 3, 4) for c in centers):
        raise argparse.ArgumentTypeError(f"--centers expects numbers from 1 to 4, found {text!r}")
    return centers


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, write the datasets and ``OUTDIR/montage.png``; returns the exit code."""
    parser = command_parser(
        "lgeseg_synth",
        "Write synthetic LGE short-axis datasets imitating the four centers of the paper "
        "(OUTDIR/center1 .. center4, nnU-Net v2 layout) and a montage of mid slices (OUTDIR/montage.png). "
        "Existing center folders are refused unless --overwrite.")
    parser.add_argument("outdir", type=Path, help="output folder")
    parser.add_argument("--cases-per-center", type=int, default=10, help="cases per center (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed; a case depends only on seed, center, index")
    parser.add_argument("--centers", type=_centers, default=(1, 2, 3, 4), help="comma-separated centers (1,2,3,4)")
    # Developer option for fast tests: square in-plane matrix, spacing no longer the center's.
    add_overwrite_flag(parser, "replace existing center folders that lgeseg_synth wrote (their dataset.json says so) "
                               "and montage.png; other folders are never replaced")
    parser.add_argument("--in-plane-size", type=int, default=None, help=argparse.SUPPRESS)
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.cases_per_center < 1:
        parser.error(f"--cases-per-center must be at least 1, found {args.cases_per_center}")
    return run_command(parser, args, _run, logging.WARNING, "%(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace) -> int:
    montage = args.outdir / "montage.png"
    if args.outdir.exists() and not args.outdir.is_dir():
        raise OutputConflictError(f"{args.outdir}: exists and is a file; OUTDIR must be a folder")
    if montage.exists() and not args.overwrite:
        raise OutputConflictError(f"{montage}: already exists; use --overwrite to replace it, or choose another "
                                  "output folder")
    check_center_folders(args.outdir, args.centers, args.overwrite)
    folders = generate_multicenter(args.outdir, args.cases_per_center, args.seed, args.centers,
                                   in_plane_size=args.in_plane_size, overwrite=args.overwrite)
    montage = write_montage(folders, montage)
    for folder in folders:
        print(folder)
    print(montage)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
