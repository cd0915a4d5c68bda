"""``lgeseg_report PRED_DIR [-i IMAGES]``: volumes, mass, wall thickness, quality flags and contours, as HTML + CSV."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli._errors import add_verbose_flag, run_cli
from lgeseg.report import make_report


def main(argv: list[str] | None = None) -> int:
    """Write the report; returns 0, or 1 with a message on stderr."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_report",
        description="For predictions without a reference: per case LV end-diastolic volume (mL), myocardial volume "
                    "and mass (g), wall thickness per AHA segment, the quality flags of lgeseg_predict and a "
                    "montage of every slice with contours; one static HTML page (OUT/index.html) and report.csv. "
                    "Methods and limits: docs/clinical_use.md.")
    parser.add_argument("predictions", metavar="PRED_DIR", help="folder of predicted label maps (lgeseg_predict -o)")
    parser.add_argument("-i", "--images", default=None, metavar="IMAGES",
                        help="the images that were predicted (files or DICOM series), to draw the contours on")
    parser.add_argument("-o", "--output", default=None, metavar="OUT", help="report folder (default PRED_DIR/report)")
    parser.add_argument("--title", default=None, help="page title")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in OUT (otherwise refused)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run_cli("lgeseg_report", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    page = make_report(args.predictions, args.output, args.images, args.title, args.overwrite)
    print(f"wrote {page} and {page.parent / 'report.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
