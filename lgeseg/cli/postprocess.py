"""``lgeseg_postprocess``: keep the largest connected LV component of every label map in a folder."""

from __future__ import annotations

import argparse

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.evaluation.postprocessing import postprocess_folder


def main(argv: list[str] | None = None) -> int:
    """Parse ``-i IN -o OUT [--per-label] [--overwrite]`` and postprocess the folder. Returns the exit code."""
    parser = command_parser(
        "lgeseg_postprocess",
        "Keep the largest 3D connected component of the whole LV (labels > 0) in every label map "
        "of a folder; the geometry of each file is kept.")
    parser.add_argument("-i", "--input", required=True, help="folder of label maps (.nii.gz, .nii, .mha, .nrrd)")
    parser.add_argument("-o", "--output", required=True, help="output folder (must differ from the input)")
    parser.add_argument("--per-label", action="store_true",
                        help="also keep only the largest component of each label (lcc_per_label)")
    add_overwrite_flag(parser, "rewrite outputs that already exist")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_command(parser, args, _run)


def _run(args: argparse.Namespace) -> int:
    written = postprocess_folder(args.input, args.output, per_label=args.per_label, overwrite=args.overwrite)
    print(f"wrote {len(written)} label map(s) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
