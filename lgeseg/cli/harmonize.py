"""``lgeseg_harmonize``: histogram matching and CycleGAN harmonization of image files.

Subcommands::

    lgeseg_harmonize fit-reference -i RAW/imagesTr -m MODEL_DIR   (or --preprocessed PRE)
    lgeseg_harmonize histogram -i IN -o OUT -m MODEL_DIR
    lgeseg_harmonize cyclegan-train --source PRE_A --target PRE_B -o GAN_DIR [--epochs N] [--continue]
    lgeseg_harmonize cyclegan-apply -i IN -o OUT -g GAN_DIR [--direction target-to-source]
"""

from __future__ import annotations

import argparse

from lgeseg import harmonization
from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_device_option, add_overwrite_flag, add_subcommand, command_parser
from lgeseg.harmonization.histogram import DEFAULT_LANDMARKS


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("lgeseg_harmonize", __doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = add_subcommand(sub, "fit-reference", "fit the training center's histogram reference into a model folder")
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", "--input", help="training images (folder, e.g. RAW/imagesTr, or file)")
    source.add_argument("--preprocessed", help="preprocessed folder PRE: use the raw images of its cases")
    fit.add_argument("--dataset", action="append", help="dataset subfolder of --preprocessed (repeatable)")
    fit.add_argument("-m", "--model", required=True, help="model folder receiving harmonization_reference.json")
    fit.add_argument("--landmarks", type=float, nargs="+", default=list(DEFAULT_LANDMARKS),
                     help="percentiles used as landmarks (default: %(default)s)")
    hist = add_subcommand(sub, "histogram", "match image histograms to a model's training center")
    hist.add_argument("-i", "--input", required=True, help="image file or folder")
    hist.add_argument("-o", "--output", required=True,
                      help="output folder (same file names and grids); not the input folder nor inside it")
    hist.add_argument("-m", "--model", required=True, help="model folder with harmonization_reference.json")
    add_overwrite_flag(hist, "replace output files of the same names")
    train = add_subcommand(sub, "cyclegan-train", "train a CycleGAN between two centers' preprocessed data")
    train.add_argument("--source", required=True, help="preprocessed folder of the source (training) center")
    train.add_argument("--target", required=True, help="preprocessed folder of the target (unseen) center")
    train.add_argument("-o", "--output", required=True, help="GAN folder to write")
    train.add_argument("--source-dataset", action="append", help="dataset subfolder of --source (repeatable)")
    train.add_argument("--target-dataset", action="append", help="dataset subfolder of --target (repeatable)")
    train.add_argument("--epochs", type=int, help="total epochs (default 20)")
    train.add_argument("--iterations-per-epoch", type=int, default=100)
    train.add_argument("--patch-size", type=int, nargs=2, default=[128, 128], metavar=("Y", "X"))
    train.add_argument("--batch-size", type=int, default=1, help="patches per center per iteration")
    train.add_argument("--features", type=int, default=16, help="generator width")
    train.add_argument("--blocks", type=int, default=4, help="generator residual blocks")
    train.add_argument("--seed", type=int, default=0)
    add_device_option(train, default="auto")
    train.add_argument("--continue", dest="resume", action="store_true", help="resume from checkpoint_latest.pt")
    apply = add_subcommand(sub, "cyclegan-apply", "translate images with a trained CycleGAN")
    apply.add_argument("-i", "--input", required=True, help="image file or folder (one channel per file)")
    apply.add_argument("-o", "--output", required=True,
                       help="output folder (same file names and grids); not the input folder nor inside it")
    apply.add_argument("-g", "--gan", required=True, help="GAN folder from cyclegan-train")
    apply.add_argument("--direction", default="target-to-source", choices=["target-to-source", "source-to-target"])
    add_device_option(apply, default="cpu")
    add_overwrite_flag(apply, "replace output files of the same names")
    for command in sub.choices.values():
        add_verbose_flag(command)
    return parser


def _run(args: argparse.Namespace) -> str:
    if args.command == "fit-reference":
        if args.input:
            refs = harmonization.fit_reference_from_files(args.input, args.model, landmarks=args.landmarks)
        else:
            refs = harmonization.fit_reference_from_preprocessed(args.preprocessed, args.model, args.dataset,
                                                                 landmarks=args.landmarks)
        return f"wrote {args.model}/harmonization_reference.json ({len(refs)} channel(s))"
    if args.command == "histogram":
        written = harmonization.harmonize_files(args.input, args.output, "histogram", model_dir=args.model,
                                                overwrite=args.overwrite)
        return f"wrote {len(written)} histogram-matched image(s) to {args.output}"
    if args.command == "cyclegan-apply":
        written = harmonization.harmonize_files(args.input, args.output, f"cyclegan:{args.gan}",
                                                device=args.device, direction=args.direction,
                                                overwrite=args.overwrite)
        return f"wrote {len(written)} translated image(s) ({args.direction}) to {args.output}"
    # deferred: torch loads only for cyclegan-train, not for the histogram subcommands
    from lgeseg.harmonization.cyclegan import CycleGANConfig
    from lgeseg.harmonization.cyclegan_train import train_cyclegan

    config = CycleGANConfig(patch_size=tuple(args.patch_size), batch_size=args.batch_size,
                            iterations_per_epoch=args.iterations_per_epoch, generator_features=args.features,
                            generator_blocks=args.blocks, seed=args.seed)
    info = train_cyclegan(args.source, args.target, args.output, config, args.source_dataset, args.target_dataset,
                          device=args.device, resume=args.resume, epochs=args.epochs)
    return f"CycleGAN trained for {info.epochs_trained} epoch(s): {args.output}"


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg_harmonize``; returns 0 on success, 1 with a one-line error otherwise."""
    parser = _parser()
    return run_command(parser, parser.parse_args(argv), lambda args: print(_run(args)))


if __name__ == "__main__":
    raise SystemExit(main())
