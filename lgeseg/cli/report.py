"""``lgeseg_report PRED_DIR [-i IMAGES]``: volumes against reference ranges, mass, wall thickness, scar estimate,
quality flags and contours, as HTML + CSV."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.report import make_report
from lgeseg.report.enhancement import DEFAULT_N_SD


def main(argv: list[str] | None = None) -> int:
    """Write the report; returns 0, or 1 with a message on stderr."""
    parser = command_parser(
        "lgeseg_report",
        "For predictions without a reference: per case the patient and study (DICOM tags, else the "
        "file name), LV end-diastolic volume (mL), myocardial volume and mass (g) against published "
        "reference ranges (by sex; per BSA with height and weight), an estimate of the enhancement (scar) "
        "burden (with -i), wall thickness per AHA segment, the quality flags of lgeseg_predict, the model "
        "and a montage of every slice with contours; one static HTML page (OUT/index.html) and "
        "report.csv. Methods and limits: docs/clinical_use.md.")
    parser.add_argument("predictions", metavar="PRED_DIR", help="folder of predicted label maps (lgeseg_predict -o)")
    parser.add_argument("-i", "--images", default=None, metavar="IMAGES",
                        help="the images that were predicted (files or DICOM series), to draw the contours on")
    parser.add_argument("-o", "--output", default=None, metavar="OUT", help="report folder (default PRED_DIR/report)")
    parser.add_argument("--title", default=None, help="page title (default: the study: patient, study, date)")
    parser.add_argument("--sex", type=_sex, default=None, metavar="M|F",
                        help="the patient's sex for the reference ranges (default: DICOM PatientSex)")
    parser.add_argument("--height-cm", type=_positive, default=None, metavar="CM",
                        help="the patient's height, for the BSA-indexed values (default: DICOM PatientSize)")
    parser.add_argument("--weight-kg", type=_positive, default=None, metavar="KG",
                        help="the patient's weight, for the BSA-indexed values (default: DICOM PatientWeight)")
    parser.add_argument("--scar-sd", type=_positive, default=DEFAULT_N_SD, metavar="N",
                        help=f"n-SD threshold of the enhancement estimate (default {DEFAULT_N_SD:g})")
    parser.add_argument("--reference-ranges", default=None, metavar="FILE.json",
                        help="your site's reference ranges (a JSON list, docs/clinical_use.md) instead of the "
                             "published ones")
    add_overwrite_flag(parser, "replace a report already in OUT (otherwise refused)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_command(parser, args, _run, logging.WARNING, "%(levelname)s %(message)s")


def _sex(text: str) -> str:
    if text.upper() not in ("M", "F"):
        raise argparse.ArgumentTypeError(f"expected M or F, found {text!r}")
    return text.upper()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    page = make_report(args.predictions, args.output, args.images, args.title, args.overwrite, sex=args.sex,
                       height_cm=args.height_cm, weight_kg=args.weight_kg, n_sd=args.scar_sd,
                       reference_ranges=args.reference_ranges)
    print(f"wrote {page} and {page.parent / 'report.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
