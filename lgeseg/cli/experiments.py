"""``lgeseg_experiments``: the paper's four domain-generalization experiments (Table 5, Figures 6-12)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, positive_int, run_command
from lgeseg.cli._options import add_device_option, command_parser
from lgeseg.experiments.describe import dry_run
from lgeseg.experiments.grid import SCALES, WINDOWS, make_config
from lgeseg.experiments.launcher import LAUNCHERS
from lgeseg.experiments.run import run_experiments, summarize_folder
from lgeseg.experiments.summary import format_table


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "lgeseg_experiments",
        "Train on one center and measure on held-out cases of every center the paper's experiments: "
        "(1) augmentation, (2) histogram matching / CycleGAN, (3) transfer learning, (4) multi-center "
        "training on 1-4 centers; Table 5 (mean ± SD over seeds) and Figures 6-12 into OUT. Every "
        "model is an independent, resumable cell; rerun to continue. Default data: synthetic centers.")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="work folder (data, cells, results, figures); required unless --dry-run")
    parser.add_argument("--scale", choices=list(SCALES), default="quick",
                        help="tiny: every cell in minutes (smoke test); quick: small CPU defaults (500 iterations per "
                             "model); medium: 1000 iterations per model; paper: the paper's recipe, preset, Table 4 "
                             "and CycleGAN pairs as written (250 epochs, batch 16, fp32, 256x256) (default: quick)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the grid (centers, budget, inference window, Table 4's subjects per center "
                             "combination, CycleGAN pairs, cells) and exit without making or writing anything")
    parser.add_argument("-e", "--experiments", type=int, nargs="+", choices=(1, 2, 3, 4), default=None,
                        help="which experiments (default: all)")
    parser.add_argument("--seeds", type=int, default=None, help="independent runs of every model (paper: 5)")
    parser.add_argument("--summary-only", action="store_true",
                        help="only collect the finished cells of OUT into tables and figures")
    run = parser.add_argument_group("launching")
    run.add_argument("--launcher", choices=LAUNCHERS, default="local",
                     help="local: cells in this process or subprocesses; submitit: Slurm jobs (pip install "
                          "'lgeseg[slurm]') (default: local)")
    run.add_argument("--jobs", type=positive_int, default=1,
                     help="cells at once, >= 1 (default 1: one after another, in-process)")
    run.add_argument("--threads", type=positive_int, default=None, help="torch threads per cell (default: CPUs / jobs)")
    run.add_argument("--submitit-cluster", default=None, help="submitit cluster: slurm, local or debug (default: auto)")
    run.add_argument("--slurm-partition", default=None)
    run.add_argument("--gpus-per-job", type=int, default=None)
    run.add_argument("--timeout-min", type=int, default=None, help="time limit of one submitit job, minutes")
    data = parser.add_argument_group("data")
    data.add_argument("--raw", type=Path, default=None, help="real data: folder with one raw dataset per center")
    data.add_argument("--test", type=Path, default=None, help="real data: the same centers' test datasets")
    data.add_argument("--train-center", default=None, help="training center's folder name (default: center1)")
    data.add_argument("--synthetic-centers", type=int, nargs="+", choices=(1, 2, 3, 4), default=None,
                      help="which synthetic centers to generate (tiny: 1 2; else all four)")
    data.add_argument("--in-plane-size", type=int, default=None, help="synthetic in-plane matrix (tiny: 48)")
    data.add_argument("--cases-per-center", type=int, default=None, help="synthetic training subjects per center")
    data.add_argument("--test-cases-per-center", type=int, default=None, help="synthetic test subjects per center")
    data.add_argument("--subjects-per-center", type=int, default=None,
                      help="experiment 4: N subjects of every center in every model (default: --subjects-by-size)")
    data.add_argument("--subjects-by-size", type=int, nargs="*", default=None, metavar="N",
                      help="experiment 4: subjects of each center (training + validation) in a model of 1, 2, 3, 4 "
                           "centers (paper: 52 26 17 14, the paper's Table 4, total about constant; none given: all "
                           "subjects with balanced sampling, the other scales' default)")
    data.add_argument("--combination-sizes", type=int, nargs="+", choices=(1, 2, 3, 4), default=None,
                      help="experiment 4: numbers of centers per model (default: 1 2 3 4)")
    data.add_argument("--extra-augmentations", nargs="+", default=None, metavar="PRESET",
                      help="augmentation presets trained in experiment 1 besides the paper's three, each its own "
                           "Table 5 column (e.g. lge_dg, lgeseg's default)")
    data.add_argument("--every-training-center", action=argparse.BooleanOptionalAction, default=None,
                      help="experiments 1-2 train on every center in turn (Figures 6 and 7 in full, all CycleGAN "
                           "pairs; paper: on)")
    train = parser.add_argument_group("training (defaults: the scale's)")
    train.add_argument("--preset", default=None, help="planner preset (default: cpu on the CPU, else default)")
    train.add_argument("--recipe", default=None, help="training recipe: default, paper, nnunet")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--iterations-per-epoch", type=int, default=None)
    train.add_argument("--train-minutes", type=float, default=None, help="time budget per model, minutes")
    train.add_argument("--finetune-blocks", default=None,
                       help="experiment 3's blocks: encoder:K, decoder:K or all (default: encoder:5 when the network "
                            "has five encoder blocks, else all)")
    train.add_argument("--finetune-amount", default=None, help="subjects of the new center: N or P%% (quick: 3)")
    train.add_argument("--block-counts", type=int, nargs="*", default=None,
                       help="Figure 8 sweep: k of encoder:k/decoder:k")
    train.add_argument("--amounts", nargs="*", default=None, help="Figure 10 sweep: N or P%% each")
    train.add_argument("--finetune-epochs", type=int, default=None)
    train.add_argument("--pretrain-source", type=Path, default=None, metavar="RAW_DATASET",
                       help="experiment 3: also pretrain on this raw dataset (e.g. ../shared/data/acdc_cine) and "
                            "fine-tune it on every unseen center like the training center's model (Figure 10's grey "
                            "line: cross-modality pretraining)")
    train.add_argument("--harmonization", nargs="+", choices=("histogram", "cyclegan"), default=None)
    train.add_argument("--gan-epochs", type=int, default=None)
    train.add_argument("--gan-iterations", type=int, default=None)
    train.add_argument("--gan-patch", type=int, default=None, help="CycleGAN patch, voxels")
    train.add_argument("--gan-features", type=int, default=None,
                       help="CycleGAN width: generator's first layer and discriminator's (quick: 16; paper: 64)")
    train.add_argument("--gan-blocks", type=int, default=None,
                       help="CycleGAN generator's residual blocks (quick: 4; paper: 9)")
    train.add_argument("--window", choices=WINDOWS, default=None,
                       help="inference window of every scoring prediction (quick: roi; paper: sliding)")
    train.add_argument("--postprocess", choices=("lcc", "lcc_per_label", "none"), default=None,
                       help="postprocessing of every prediction (default: each model's validated choice; paper: lcc)")
    train.add_argument("--mirroring", action="store_true", default=None, help="flip test-time augmentation")
    add_device_option(train)
    add_verbose_flag(parser)
    return parser


def _submitit_options(args: argparse.Namespace) -> dict[str, object]:
    options = {"cluster": args.submitit_cluster, "slurm_partition": args.slurm_partition,
               "gpus_per_node": args.gpus_per_job, "timeout_min": args.timeout_min}
    return {k: v for k, v in options.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    """Run the experiments and print the Table 5-style Dice table. Returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is None and not args.dry_run:
        parser.error("the following arguments are required: -o/--out (unless --dry-run)")
    return run_command(parser, args, _run, log_format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def _run(args: argparse.Namespace) -> int:
    lists = ("experiments", "block_counts", "amounts", "harmonization", "synthetic_centers", "combination_sizes",
             "extra_augmentations", "subjects_by_size")
    as_tuple = {k: None if getattr(args, k) is None else tuple(getattr(args, k)) for k in lists}
    if args.summary_only:
        results = summarize_folder(args.out)
    else:
        config = make_config(
            args.scale, out_dir=args.out or Path("OUT"), seeds=args.seeds, train_center=args.train_center,
            raw_dir=args.raw, test_dir=args.test, in_plane_size=args.in_plane_size,
            cases_per_center=args.cases_per_center, test_cases_per_center=args.test_cases_per_center,
            subjects_per_center=args.subjects_per_center,
            every_training_center=args.every_training_center, preset=args.preset, recipe=args.recipe,
            epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch, train_minutes=args.train_minutes,
            finetune_blocks=args.finetune_blocks, finetune_amount=args.finetune_amount,
            finetune_epochs=args.finetune_epochs, gan_epochs=args.gan_epochs, gan_iterations=args.gan_iterations,
            gan_patch=args.gan_patch, postprocess=args.postprocess, mirroring=args.mirroring, device=args.device,
            pretrain_source=args.pretrain_source, gan_features=args.gan_features, gan_blocks=args.gan_blocks,
            window=args.window, **as_tuple)
        if args.dry_run:
            print(dry_run(config))
            return 0
        results = run_experiments(config, args.launcher, args.jobs, args.threads, _submitit_options(args))
    train_center = results["config"]["train_center"]
    print(f"\nMean 3D Dice (blood pool, myocardium) on held-out test cases, ± SD over seeds; trained on "
          f"{train_center}:\n")
    print(format_table(results["table5"], train_center))
    missing = results["cells"]["missing"]
    if missing:
        print(f"\n{len(missing)} cell(s) without a result (failed or not run): {', '.join(missing[:10])}")
    print(f"\nResults: {args.out / 'results.json'}, {args.out / 'table.md'}, figures in {args.out / 'figures'}")
    return 1 if results.get("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
