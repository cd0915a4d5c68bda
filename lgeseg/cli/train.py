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
import subprocess
import sys
from pathlib import Path

import torch

from lgeseg.cli import exit_without_teardown
from lgeseg.cli._errors import add_verbose_flag, is_out_of_memory, positive_int, run_cli
from lgeseg.device import resolve_device
from lgeseg.planning.memory import batch_memory_problem
from lgeseg.planning.verify import available_memory_bytes
from lgeseg.records import Plan, read_plan
from lgeseg.training import train
from lgeseg.training.distributed import DistributedContext
from lgeseg.training.loop import check_resumable
from lgeseg.training.recipes import COMPILE_MODES, DEFAULT_RECIPE, available_recipes, get_recipe


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lgeseg_train``."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_train", allow_abbrev=False,
        description="Train a 2D U-Net (deep supervision, Dice + CE) on preprocessed data. Several -p folders "
                    "and/or -d datasets train one multi-center model with balanced sampling per dataset.",
    )
    parser.add_argument("-p", "--preprocessed", action="append", required=True,
                        help="preprocessed folder (from lgeseg_plan_and_preprocess); repeat for several")
    parser.add_argument("-o", "--output", required=True, help="model folder to create (or to continue)")
    parser.add_argument("-d", "--dataset", action="append", default=None,
                        help="dataset (center) to train on; repeat for several (default: all)")
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
    parser.add_argument("--device", "-device", choices=["cuda", "cpu", "mps"], default=None,
                        help="training device (default: best available)")
    parser.add_argument("--seed", type=int, default=None, help="seed of weights, sampling and augmentation")
    parser.add_argument("--subjects-per-center", type=int, default=None,
                        help="keep N subjects of every dataset (center), chosen reproducibly: equal counts per "
                             "center, the paper's Table 4 (default: all subjects, balanced sampling)")
    parser.add_argument("--fold", type=int, default=None, help="cross-validation fold 0-4 (default 0)")
    parser.add_argument("--num-workers", type=int, default=None, help="batch-assembling threads (default min(2, CPUs))")
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
    parser.add_argument("--continue", "--c", dest="resume", action="store_true",
                        help="resume from checkpoint_latest.pt in the output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model or checkpoints already in the output folder (otherwise refused)")
    add_verbose_flag(parser)
    parser.add_argument("--gpus", type=int, default=None,
                        help="train on N processes, one per GPU, with DistributedDataParallel (starts torchrun); "
                             "--batch-size is then the global batch. With --device cpu: N CPU processes (gloo)")
    parser.add_argument("--sample-log", default=None, metavar="DIR",
                        help="debugging: each process appends what its batches were cut from to "
                             "DIR/samples_rank<r>.txt (keep DIR outside the model folder)")
    return parser


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
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")
    if args.gpus is not None and args.gpus != 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, argv)
    return run_cli("lgeseg_train", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    distributed = DistributedContext.from_env(os.environ)
    if args.gpus is not None and args.gpus != distributed.world_size:
        raise ValueError(f"--gpus {args.gpus} but torchrun started {distributed.world_size} processes "
                         "(WORLD_SIZE): leave --gpus out under torchrun")
    prefix = f"[rank {distributed.rank}] " if distributed.enabled else ""
    logging.basicConfig(level=logging.INFO if distributed.is_main else logging.WARNING, format=prefix + "%(message)s")
    plan = _check_before_training(args, distributed)
    try:
        model_dir = _train(args, distributed)
    except Exception as err:  # noqa: BLE001 - only running out of memory is named here; the rest re-raised
        if not is_out_of_memory(err):
            raise
        # a bare MemoryError names nothing: say which run and batch ran out
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        batch = args.batch_size or (plan.batch_size if plan else "the plan's")
        raise MemoryError(f"training {args.output} (batch {batch}): {detail}") from err
    if distributed.is_main:
        print(f"model folder: {model_dir}")
    return 0


def _first_plan(args: argparse.Namespace) -> tuple[Path, Plan] | None:
    """The first -p folder's plans.json and plan; None when it has none (``train`` names that problem)."""
    path = Path(args.preprocessed[0]) / "plans.json"
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


def _check_before_training(args: argparse.Namespace, distributed: DistributedContext) -> Plan | None:
    """What must hold before any allocation: a resumable folder, the model's plan, a batch that fits memory."""
    output = Path(args.output)
    if args.resume:
        check_resumable(output)
        if (output / "plans.json").is_file():
            _check_same_plan(output / "plans.json", [Path(folder) / "plans.json" for folder in args.preprocessed])
    first = _first_plan(args)
    if first is None:
        return None
    plan_path, plan = first
    device = resolve_device(args.device)
    if device.type == "cuda" and distributed.enabled:
        device = torch.device("cuda", distributed.local_rank)
    available = available_memory_bytes(str(device))
    recipe = get_recipe(args.recipe or DEFAULT_RECIPE)
    batch = args.batch_size or recipe.batch_size or plan.batch_size
    problem = None if available is None else batch_memory_problem(
        plan.topology, tuple(plan.patch_size), batch, available, device.type, recipe.mixed_precision,
        recipe.optimizer, distributed.world_size)
    if problem:
        source = "--batch-size" if args.batch_size else f"batch_size of {plan_path}"
        raise ValueError(f"{source}: {problem} (network and patch of {plan_path})")
    return plan


def _train(args: argparse.Namespace, distributed: DistributedContext) -> Path:
    return train(
        args.preprocessed, args.output, recipe=args.recipe, datasets=args.dataset, resume=args.resume,
        overwrite=args.overwrite, distributed=distributed, sample_log=args.sample_log,
        augmentation=args.augmentation, epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        batch_size=args.batch_size, learning_rate=args.lr, device=args.device, seed=args.seed, fold=args.fold,
        subjects_per_center=args.subjects_per_center, num_workers=args.num_workers, compile=args.compile,
        compile_mode=args.compile_mode, cuda_graph=args.cuda_graph,
    )


if __name__ == "__main__":
    # torchrun starts each rank as ``python -m lgeseg.cli.train``. Interpreter teardown after a gloo run
    # sometimes aborted a finished rank ("terminate called without an active exception", exit -6) and
    # torchrun then failed the whole run; every output is written before main() returns, so skip it.
    exit_without_teardown(main)
