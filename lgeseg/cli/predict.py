"""``lgeseg_predict``: segment a folder of images with one or several trained models."""

from __future__ import annotations

import argparse
import logging

from lgeseg.cli import exit_without_teardown
from lgeseg.cli._errors import add_verbose_flag, run_cli
from lgeseg.inference import predict_folder
from lgeseg.inference.quality import read_quality_report, summary_text


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments (see ``--help``) and predict the folder. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_predict",
        description="Segment every image in INPUT_DIR (<case>_0000.nii.gz or <case>.nii.gz; .nii, .mha, .nrrd too) "
                    "and write OUTPUT_DIR/<case>.nii.gz on the input's exact grid.")
    parser.add_argument("-i", "--input", required=True, help="folder of images")
    parser.add_argument("-o", "--output", required=True, help="output folder (not the input folder or inside it)")
    parser.add_argument("-m", "--model", action="append", required=True, dest="models",
                        help="model folder; repeat (-m A -m B) to ensemble folds or seeds")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--no-mirroring", action="store_true", help="skip flip test-time augmentation")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write <case>.npz with the class probabilities (K, z, y, x)")
    parser.add_argument("--postprocess", choices=("lcc", "lcc_per_label", "none"), default=None,
                        help="default: the choice stored in the model folder's model.json")
    parser.add_argument("--overlays", action="store_true", help="also write <case>_overlay.png with the contours")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs already exist")
    parser.add_argument("--harmonize", default=None, metavar="SPEC",
                        help="'histogram' or 'cyclegan:GAN_DIR': harmonize images before predicting")
    parser.add_argument("--checkpoint", choices=("final", "best"), default="final", help="weights to use")
    parser.add_argument("--window", choices=("roi", "sliding", "slice"), default="roi",
                        help="roi (default): whole slices find the ventricle, a box around it is refined; "
                             "sliding: training-patch tiles everywhere (nnU-Net, slowest); slice: whole slices only "
                             "(less accurate when slices are larger than the training patch)")
    parser.add_argument("--sliding-window", action="store_const", const="sliding", dest="window",
                        help="same as --window sliding")
    parser.add_argument("--step", type=float, default=0.5, help="sliding-window stride, fraction of the patch")
    parser.add_argument("--allow-unusual-spacing", action="store_true",
                        help="accept voxel spacing outside 0.1-20 mm in-plane / 0.5-30 mm through-plane")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_cli("lgeseg_predict", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    written = predict_folder(args.input, args.output, args.models, device=args.device,
                             mirroring=not args.no_mirroring, save_probabilities=args.save_probabilities,
                             postprocess=args.postprocess, overlays=args.overlays, overwrite=args.overwrite,
                             harmonize=args.harmonize, checkpoint=args.checkpoint, step=args.step,
                             window=args.window, allow_unusual_spacing=args.allow_unusual_spacing)
    print(f"wrote {len(written)} prediction(s) to {args.output}")
    records = read_quality_report(args.output)
    if records:
        print(summary_text(records))
    return 0


def console_main() -> None:
    """Entry point of the ``lgeseg_predict`` command: ``main()`` without the interpreter's slow teardown."""
    exit_without_teardown(main)
