"""``lgeseg_convert {emidec,mscmr,mnms,dicom} SRC DST``: convert a public dataset or DICOM into lgeseg's raw format."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, add_subcommand, command_parser
from lgeseg.converters import convert_dicom, convert_emidec, convert_mnms, convert_mscmr


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "lgeseg_convert",
        "Convert EMIDEC, MS-CMRSeg 2019 (LGE), M&Ms or DICOM series into lgeseg's raw format "
        "(nnU-Net v2 layout, labels 0 background, 1 LV blood pool, 2 LV myocardium) and validate the result. "
        "See docs/datasets.md.")
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="{emidec,mscmr,mnms,dicom}")
    helps = {"emidec": "EMIDEC: SRC/Case_*/Images and Contours",
             "mscmr": "MS-CMRSeg 2019 LGE: patientN_LGE.nii.gz and patientN_LGE_manual.nii.gz",
             "mnms": "M&Ms: <code>/<code>_sa.nii.gz (+ _sa_gt) and the information CSV",
             "dicom": "DICOM: the short-axis LGE series below SRC (a PACS export; others skipped, one line each) "
                      "-> imagesTs/<series>_0000.nii.gz"}
    for name, text in helps.items():
        command = add_subcommand(sub, name, text, description=text)
        command.add_argument("src", type=Path, metavar="SRC", help="the unpacked source dataset")
        command.add_argument("dst", type=Path, metavar="DST", help="destination raw dataset folder (empty)")
        add_overwrite_flag(command, "replace imagesTr, labelsTr, imagesTs and dataset.json in a non-empty DST")
        if name == "mnms":
            command.add_argument("--info", type=Path, default=None, metavar="CSV",
                                 help="M&Ms information CSV (default: the one CSV with its columns below SRC)")
            command.add_argument("--split-centers", action="store_true",
                                 help="write one dataset per centre, DST/mnms_centre<k>")
        add_verbose_flag(command)
        if name == "dicom":
            which = command.add_mutually_exclusive_group()
            which.add_argument("--series", action="append", default=None, metavar="PATTERN",
                               help="convert the series with this UID, number, case name or description (wildcards: "
                                    "'*LGE*'), whatever its kind; repeat for several (default: the study's short-axis "
                                    "LGE stacks, found by inversion time, sequence name, description and image type)")
            which.add_argument("--all-series", action="store_true",
                               help="convert every series (localizers, cines, maps too), not only the LGE stacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one converter. Returns 0 on success, 1 with a message on stderr otherwise."""
    parser = _parser()
    args = parser.parse_args(argv)
    return run_command(parser, args, _run, log_format="%(levelname)s %(name)s: %(message)s",
                       prog=f"lgeseg_convert {args.dataset}")


def _run(args: argparse.Namespace) -> int:
    if args.dataset == "dicom":
        count = convert_dicom(args.src, args.dst, args.overwrite, series=args.series, all_series=args.all_series)
    elif args.dataset == "mnms":
        count = convert_mnms(args.src, args.dst, args.overwrite, info_csv=args.info, split_centers=args.split_centers)
    else:
        convert = convert_emidec if args.dataset == "emidec" else convert_mscmr
        count = convert(args.src, args.dst, args.overwrite)
    print(f"wrote {count} case(s) to {args.dst}; the result passes lgeseg_validate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
