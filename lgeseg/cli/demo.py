"""``lgeseg_demo``: the main job on the embedded synthetic multi-center data."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_device_option, command_parser
from lgeseg.experiments.demo import DemoConfig, format_results, run_demo, score_shipped_model


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "lgeseg_demo",
        "Generate four synthetic LGE centers, train on one, predict all, print a Dice table.")
    parser.add_argument("-o", "--out", type=Path, default=Path("lgeseg_demo"),
                        help="work folder (default: %(default)s)")
    parser.add_argument("--cases-per-center", type=int, default=DemoConfig.cases_per_center)
    parser.add_argument("--train-center", type=int, choices=(1, 2, 3, 4), default=DemoConfig.train_center)
    parser.add_argument("--train-minutes", type=float, default=DemoConfig.train_minutes,
                        help="training time budget in minutes (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=DemoConfig.epochs, help="upper bound on epochs")
    parser.add_argument("--test-cases-per-center", type=int, default=DemoConfig.test_cases_per_center,
                        help="cases predicted per unseen center (default: %(default)s)")
    parser.add_argument("--iterations-per-epoch", type=int, default=DemoConfig.iterations_per_epoch)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    parser.add_argument("--shipped-model", default=None, metavar="NAME",
                        help="also score this shipped model (lge-lv, lge-lv-cine) on the same test cases, with no "
                             "training. They were trained on real scans and never saw the phantom, which is not "
                             "real LGE: expect lower figures than on real data (docs/pretrained.md)")
    add_device_option(parser)
    add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; prints the Dice table and where the overlays are. Returns the exit code."""
    parser = _parser()
    return run_command(parser, parser.parse_args(argv), _run, log_format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def _run(args: argparse.Namespace) -> int:
    config = DemoConfig(out_dir=args.out, cases_per_center=args.cases_per_center, train_center=args.train_center,
                        train_minutes=args.train_minutes, test_cases_per_center=args.test_cases_per_center,
                        epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch, seed=args.seed,
                        device=args.device, shipped_model=args.shipped_model)
    results = run_demo(config)
    shipped = score_shipped_model(config) if config.shipped_model else None
    print(f"\nMean 3D Dice, model trained on center{config.train_center} only (synthetic LGE):\n")
    print(format_results(results, f"center{config.train_center}"))
    if shipped is not None:
        print(f"\nThe shipped model {config.shipped_model} on the same cases, no training (it never saw synthetic "
              "data; docs/pretrained.md):\n")
        print(format_results(shipped, "none"))
    overlays = sorted((args.out / "predictions").glob("*/*_overlay.png"))
    print(f"\nOverlays ({len(overlays)}): e.g. {overlays[0] if overlays else 'none'}")
    print(f"Model folder: {args.out / 'model'} (progress.png, model.json); metrics: {args.out / 'metrics'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
