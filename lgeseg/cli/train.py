"""``lgeseg_train``: train a 2D U-Net from preprocessed data into a model folder.

``--gpus N`` trains one model on N processes (data parallel): the command starts
``python -m torch.distributed.run --standalone --nproc-per-node N -m lgeseg.cli.train ...`` with the
same arguments, and each process it starts (it sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``)
trains its share of every batch. Starting torchrun yourself works the same (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from lgeseg.cli import (
    LGESEG_PLANS,
    LGESEG_TRAINER,
    RESULTS_ENV,
    exit_without_teardown,
    is_dataset_id,
    nnunet_dataset_folder,
    preprocessed_folder,
)
from lgeseg.cli._errors import add_verbose_flag, is_out_of_memory, positive_int, run_command
from lgeseg.cli._options import (
    add_device_option,
    add_resume_options,
    add_time_budget_option,
    add_workers_option,
    check_resume_options,
    command_parser,
    nnunet_configuration,
)
from lgeseg.core.device import resolve_device
from lgeseg.core.records import PLANS_FILE, Plan, read_plan
from lgeseg.planning.memory import batch_memory_problem
from lgeseg.planning.verify import available_memory_bytes
from lgeseg.training import train
from lgeseg.training.distributed import DistributedContext
from lgeseg.training.loop import check_resumable
from lgeseg.training.recipes import COMPILE_MODES, DEFAULT_RECIPE, available_recipes, resolve_batch_size
from lgeseg.training.trainer import recipe_for_run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lgeseg_train``."""
    parser = command_parser(
        "lgeseg_train",
        "Train a 2D U-Net (deep supervision, Dice + CE) on preprocessed data. Several -p folders "
        "and/or -d datasets train one multi-center model with balanced sampling per dataset.")
    parser.add_argument("nnunet", nargs="*", metavar="DATASET 2d FOLD",
                        help="nnU-Net's positional form (nnUNetv2_train 4 2d 0): trains on "
                             "$nnUNet_preprocessed/DatasetNNN_*/lgesegPlans_2d (lgeseg_plan_and_preprocess -d 4 writes "
                             "it) into $nnUNet_results/DatasetNNN_*/lgesegTrainer__lgesegPlans__2d/fold_FOLD; -p and "
                             "-o replace either")
    parser.add_argument("-p", "--preprocessed", action="append", default=None,
                        help="preprocessed folder (from lgeseg_plan_and_preprocess); repeat for several")
    parser.add_argument("-o", "--output", default=None, help="model folder to create (or to continue)")
    parser.add_argument("-d", "--dataset", action="append", default=None,
                        help="dataset (center) of the preprocessed folders to train on; repeat for several "
                             "(default: all)")
    parser.add_argument("-tr", "--trainer", default=None, metavar="TRAINER",
                        help="nnU-Net's trainer class, as a recipe: nnUNetTrainer is --recipe nnunet, "
                             "nnUNetTrainer_<N>epochs also --epochs N (lgeseg has no trainer classes)")
    parser.add_argument("--recipe", choices=available_recipes(), default=None,
                        help=f"training recipe (default: {DEFAULT_RECIPE}: the paper's Adam 1e-3, 250 epochs, with "
                             "the extras of docs/paper.md; paper: the paper as written)")
    parser.add_argument("--augmentation", default=None, help="augmentation preset (default: the recipe's)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="epochs, >= 1 (default: the recipe's)")
    parser.add_argument("--iterations-per-epoch", type=positive_int, default=None, help="optimizer steps per epoch")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="slices per batch (default: the plan's); refused when the memory estimate exceeds the "
                             "device's free memory")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    add_device_option(parser, what="training device")
    parser.add_argument("--seed", type=int, default=None, help="seed of weights, sampling and augmentation")
    parser.add_argument("--subjects-per-center", type=int, default=None,
                        help="keep N subjects of every dataset (center), chosen reproducibly: equal counts per "
                             "center, the paper's Table 4 (default: all subjects, balanced sampling)")
    parser.add_argument("-f", "--fold", type=int, default=None, help="cross-validation fold 0-4 (default 0)")
    add_workers_option(parser, "batch-assembling threads (default min(2, CPUs))")
    add_time_budget_option(parser)
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="torch.compile the network (default: on for CUDA)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default=None,
                        help="torch.compile mode (default: the recipe's, 'default'); reduce-overhead and "
                             "max-autotune replay CUDA graphs, max-autotune also tunes kernels (minutes)")
    parser.add_argument("--cuda-graph", dest="cuda_graph", action="store_true", default=None,
                        help="capture the whole training step (forward, loss, backward, optimizer) as one CUDA "
                             "graph and replay it; CUDA and one process only (default: the recipe's, off)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false")
    add_resume_options(parser, "resume from checkpoint_latest.pt in the output folder")
    add_verbose_flag(parser)
    parser.add_argument("--gpus", type=int, default=None,
                        help="train on N processes, one per GPU, with DistributedDataParallel (starts torchrun); "
                             "--batch-size is then the global batch. With --device cpu: N CPU processes (gloo)")
    parser.add_argument("--sample-log", default=None, metavar="DIR",
                        help="debugging: each process appends what its batches were cut from to "
                             "DIR/samples_rank<r>.txt (keep DIR outside the model folder)")
    return parser


#: ``-tr nnUNetTrainer_250epochs``: nnU-Net's trainer variants that differ only in epochs.
_EPOCHS_TRAINER = re.compile(r"nnUNetTrainer_(\d+)epochs")


def _nnunet_habits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """nnU-Net's spellings: ``DATASET 2d FOLD``, ``-tr TRAINER``; ``-p PLANS_NAME`` named as what it is not."""
    if args.trainer is not None:
        match = _EPOCHS_TRAINER.fullmatch(args.trainer)
        if args.trainer in ("nnUNetTrainer", LGESEG_TRAINER) or match:
            args.recipe = args.recipe or ("nnunet" if args.trainer != LGESEG_TRAINER else None)
            args.epochs = args.epochs or (int(match.group(1)) if match else None)
        else:
            parser.error(f"-tr {args.trainer}: lgeseg has no trainer classes; a variant is a recipe (--recipe "
                         f"{', '.join(available_recipes())}) with options such as --epochs, --lr, --augmentation; "
                         "nnUNetTrainer is --recipe nnunet, nnUNetTrainer_<N>epochs adds --epochs N")
    for folder in args.preprocessed or ():
        if not Path(folder).exists() and re.fullmatch(r"\w*Plans\w*", folder):
            parser.error(f"-p {folder}: lgeseg_train's -p is the preprocessed folder, not nnU-Net's plans identifier; "
                         "the plan is that folder's plans.json (import nnU-Net's with lgeseg_plan_and_preprocess "
                         "--plans-from nnUNetPlans.json)")
    if args.nnunet:
        _positional_form(parser, args)
    if not args.preprocessed or not args.output:
        parser.error("the following arguments are required: -p/--preprocessed, -o/--output (or nnU-Net's "
                     "positional DATASET 2d FOLD with $nnUNet_preprocessed and $nnUNet_results set)")


def _positional_form(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``lgeseg_train 4 2d 0``: the preprocessed and model folders of dataset 4's fold 0 under nnU-Net's folders."""
    if len(args.nnunet) != 3:
        parser.error(f"nnU-Net's positional form is DATASET CONFIGURATION FOLD (lgeseg_train 4 2d 0), found "
                     f"{' '.join(args.nnunet)}")
    dataset, configuration, fold = args.nnunet
    try:
        nnunet_configuration(configuration)
    except argparse.ArgumentTypeError as err:
        parser.error(f"CONFIGURATION: {err}")
    if not fold.isdigit() or not is_dataset_id(dataset):
        parser.error(f"lgeseg_train {' '.join(args.nnunet)}: expected a dataset id (4, Dataset004_Name) and a fold "
                     "number 0-4 (lgeseg trains one fold per model; nnU-Net's fold 'all' is not one)")
    if args.fold is not None and args.fold != int(fold):
        parser.error(f"FOLD {fold} and --fold {args.fold} differ")
    args.fold = int(fold)
    exact = (f"lgeseg_train -p PREPROCESSED -o MODEL_FOLDER --fold {fold}, with PREPROCESSED from "
             f"lgeseg_plan_and_preprocess -d {dataset} -o PREPROCESSED")
    try:
        if not args.preprocessed:
            pre = preprocessed_folder(dataset)
            if not (pre / PLANS_FILE).is_file():
                raise FileNotFoundError(f"{pre}: no lgeseg preprocessed data; make it with "
                                        f"lgeseg_plan_and_preprocess -d {dataset}")
            args.preprocessed = [str(pre)]
        if not args.output:
            name = nnunet_dataset_folder(dataset, RESULTS_ENV).name if _results_has(dataset) else \
                Path(args.preprocessed[0]).resolve().parent.name
            args.output = str(Path(os.environ[RESULTS_ENV]) / name / f"{LGESEG_TRAINER}__{LGESEG_PLANS}__2d"
                              / f"fold_{fold}") if os.environ.get(RESULTS_ENV) else None
            if args.output is None:
                raise FileNotFoundError(f"no -o given: set {RESULTS_ENV} (nnU-Net's folder of trained models)")
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"{' '.join(args.nnunet)}: {err}; or type: {exact}")


def _results_has(dataset: str) -> bool:
    try:
        nnunet_dataset_folder(dataset, RESULTS_ENV)
    except (FileNotFoundError, ValueError):
        return False
    return True


def _launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this command under torchrun with ``args.gpus`` processes on this machine; its exit code."""
    if args.gpus < 1:
        print(f"lgeseg_train: error: --gpus must be >= 1, found {args.gpus}")
        return 2
    if args.device in (None, "cuda"):
        if torch.cuda.device_count() < args.gpus:
            print(f"lgeseg_train: error: --gpus {args.gpus} but this machine has {torch.cuda.device_count()} "
                  "CUDA device(s); use fewer, or --device cpu for CPU processes")
            return 2
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.gpus}",
               "-m", "lgeseg.cli.train", *argv]
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg_train``; returns the exit code (0 success, 1 error on stderr, 2 usage).

    With ``--gpus N`` (N > 1) outside torchrun it starts torchrun and returns its exit code.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    _nnunet_habits(parser, args)
    check_resume_options(parser, args)
    if args.gpus is not None and args.gpus != 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, argv)
    return run_command(parser, args, _run, level=None)  # _run sets up logging: a rank's prefix


def _run(args: argparse.Namespace) -> int:
    distributed = DistributedContext.from_env(os.environ)
    if args.gpus is not None and args.gpus != distributed.world_size:
        raise ValueError(f"--gpus {args.gpus} but torchrun started {distributed.world_size} processes "
                         "(WORLD_SIZE): leave --gpus out under torchrun")
    prefix = f"[rank {distributed.rank}] " if distributed.enabled else ""
    logging.basicConfig(level=logging.INFO if distributed.is_main else logging.WARNING, format=prefix + "%(message)s")
    batch = _check_before_training(args, distributed)
    try:
        model_dir = _train(args, distributed)
    except Exception as err:  # noqa: BLE001 - only running out of memory is named here; the rest re-raised
        if not is_out_of_memory(err):
            raise
        # a bare MemoryError names nothing: say which run and batch ran out
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        raise MemoryError(f"training {args.output} (batch {batch}): {detail}") from err
    if distributed.is_main:
        print(f"model folder: {model_dir}")
    return 0


def _first_plan(args: argparse.Namespace) -> tuple[Path, Plan] | None:
    """The first -p folder's plans.json and plan; None when it has none (``train`` names that problem)."""
    path = Path(args.preprocessed[0]) / PLANS_FILE
    return (path, read_plan(path)) if path.is_file() else None


def _check_same_plan(model_plans: Path, preprocessed_plans: list[Path]) -> None:
    """``--continue`` trains the model's network: every -p folder must hold the model's plans.json."""
    model_plan = read_plan(model_plans)
    for path in preprocessed_plans:
        plan = read_plan(path) if path.is_file() else model_plan  # a missing one: train() names it
        fields = [f.name for f in dataclasses.fields(Plan) if getattr(plan, f.name) != getattr(model_plan, f.name)]
        if fields:
            raise ValueError(f"{path} differs from {model_plans} (fields: {', '.join(fields)}): --continue needs the "
                             "preprocessed folder the model was trained on (-p), or train a new model without "
                             "--continue")


def _check_before_training(args: argparse.Namespace, distributed: DistributedContext) -> int | str:
    """What must hold before any allocation: a resumable folder, the model's plan, a batch that fits memory.

    Returns the run's batch size (``recipes.resolve_batch_size`` of the run's recipe, as ``train`` will
    resolve it), or ``"the plan's"`` when the first -p folder has no plan (``train`` names that problem).
    """
    output = Path(args.output)
    if args.resume:
        check_resumable(output)
        if (output / PLANS_FILE).is_file():
            _check_same_plan(output / PLANS_FILE, [Path(folder) / PLANS_FILE for folder in args.preprocessed])
    first = _first_plan(args)
    if first is None:
        return "the plan's"
    plan_path, plan = first
    device = resolve_device(args.device)
    if device.type == "cuda" and distributed.enabled:
        device = torch.device("cuda", distributed.local_rank)
    available = available_memory_bytes(str(device))
    recipe = recipe_for_run(args.recipe, output, args.resume, **_overrides(args))
    batch = resolve_batch_size(recipe, plan).batch_size
    problem = None if available is None else batch_memory_problem(
        plan.topology, tuple(plan.patch_size), batch, available, device.type, recipe.mixed_precision,
        recipe.optimizer, distributed.world_size)
    if problem:
        source = ("--batch-size" if args.batch_size else f"batch_size of {plan_path}" if recipe.batch_size is None
                  else f"batch_size {recipe.batch_size} of the recipe {recipe.name!r}")
        raise ValueError(f"{source}: {problem} (network and patch of {plan_path})")
    return batch


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields the command line sets (None: the recipe's)."""
    return dict(augmentation=args.augmentation, epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
                batch_size=args.batch_size, learning_rate=args.lr, device=args.device, seed=args.seed, fold=args.fold,
                subjects_per_center=args.subjects_per_center, num_workers=args.num_workers, compile=args.compile,
                compile_mode=args.compile_mode, cuda_graph=args.cuda_graph, max_minutes=args.time_budget)


def _train(args: argparse.Namespace, distributed: DistributedContext) -> Path:
    return train(args.preprocessed, args.output, recipe=args.recipe, datasets=args.dataset, resume=args.resume,
                 overwrite=args.overwrite, distributed=distributed, sample_log=args.sample_log, **_overrides(args))


if __name__ == "__main__":
    # torchrun starts each rank as ``python -m lgeseg.cli.train``. Interpreter teardown after a gloo run
    # sometimes aborted a finished rank ("terminate called without an active exception", exit -6) and
    # torchrun then failed the whole run; every output is written before main() returns, so skip it.
    exit_without_teardown(main)
