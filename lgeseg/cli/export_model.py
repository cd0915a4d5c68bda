"""``lgeseg_export_model MODEL OUT.zip``: pack a trained model folder into one zip to hand on."""

from __future__ import annotations

import argparse

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.model.archive import export_model


def main(argv: list[str] | None = None) -> int:
    """Export the model; returns 0, 1 with a message on stderr, or 2 for a usage error."""
    parser = command_parser(
        "lgeseg_export_model",
        "Pack a model folder (model.json with its model card, plans.json, weights, training records "
        "and a SHA-256 manifest) into one zip that lgeseg_install_model checks and unpacks. The model "
        "folder is only read (the card is built into the zip). By default the zip holds no training "
        "data path, no training case id and no split (splits.json, training_log.txt and the per-case "
        "fingerprint entries are left out; counts and summaries stay); --include-provenance keeps them.")
    parser.add_argument("model", metavar="MODEL", help="trained model folder")
    parser.add_argument("zip", metavar="OUT.zip", help="zip file to write")
    parser.add_argument("--checkpoint", action="append", choices=("final", "best", "latest"), default=None,
                        help="weights to include (default: final); repeat for several")
    parser.add_argument("--intended-use", default=None, metavar="TEXT",
                        help="the model card's intended use (default: keep the card's, or lgeseg's standard text)")
    parser.add_argument("--include-provenance", action="store_true",
                        help="keep the training data paths, case ids and splits in the zip (default: left out)")
    add_overwrite_flag(parser, "replace an existing OUT.zip (otherwise refused)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_command(parser, args, _run, level=None)


def _run(args: argparse.Namespace) -> int:
    path = export_model(args.model, args.zip, args.checkpoint or ("final",), args.intended_use, args.overwrite,
                        include_provenance=args.include_provenance)
    kept = "with" if args.include_provenance else "without"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {kept} training data paths, case ids and splits); "
          f"install it with: lgeseg_install_model {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
