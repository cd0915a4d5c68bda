"""``train`` / ``run_training``: preprocessed data in, a self-contained model folder out.

Usage (a preprocessed folder)::

    from lgeseg.training import train
    model_dir = train(["work/preprocessed"], "work/model", recipe="default", epochs=50)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from lgeseg import __version__
from lgeseg.augmentation import augment_batch, get_preset, required_crop_size
from lgeseg.core.atomic import remove_stale_temporaries
from lgeseg.core.device import resolve_device
from lgeseg.core.errors import InvalidInputError, OutputConflictError
from lgeseg.core.records import save_json
from lgeseg.evaluation.postprocessing import select_postprocessing
from lgeseg.harmonization import fit_reference_from_preprocessed
from lgeseg.model.card import write_model_card
from lgeseg.model.folder import (
    CHECKPOINT_BEST_FILE,
    CHECKPOINT_FILES,
    CHECKPOINT_FINAL_FILE,
    CHECKPOINT_LATEST_FILE,
    METADATA_FILES,
    MODEL_INFO_FILE,
    PROGRESS_PLOT_FILE,
    SPLITS_FILE,
    TRAINING_LOG_FILE,
    ModelInfo,
    load_checkpoint,
    read_model_metadata,
    write_model_metadata,
)
from lgeseg.training.data import PatchSampler, TrainingCase, case_key, load_cases
from lgeseg.training.distributed import (
    SINGLE_PROCESS,
    DistributedContext,
    broadcast_from_main,
    process_group,
    rank_device,
    reduce_numbers,
    split_batch,
)
from lgeseg.training.loop import (
    EpochStats,
    TrainingState,
    build_state,
    restore_state,
    save_state,
    train_epoch,
    use_compile,
)
from lgeseg.training.plots import plot_progress
from lgeseg.training.recipes import DEFAULT_RECIPE, TrainConfig, check_augmentation, get_recipe, resolve_batch_size
from lgeseg.training.splits import fold_of, limit_subjects, load_or_create_splits
from lgeseg.training.training_data import TrainingData, open_training_data
from lgeseg.training.validate_epoch import ValidationResult, validate

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FinetuneSpec:
    """How a fine-tuning run differs from training from scratch.

    Attributes:
        parent: the pretrained model folder.
        init_checkpoint: checkpoint whose ``network`` weights start the run.
        trainable: ``"all"``, ``"encoder:K"`` or ``"decoder:K"``; every other parameter is frozen.
        target_cases: training cases of the new center (``"<dataset>/<case>"``).
        val_cases: validation cases (the target cases when the center has no others).
    """

    parent: str
    init_checkpoint: str
    trainable: str
    target_cases: tuple[str, ...]
    val_cases: tuple[str, ...]


@dataclasses.dataclass
class _Run:
    """Everything fixed for the run besides the state: data, folder, augmentation."""

    data: TrainingData
    model_dir: Path
    train_cases: list[TrainingCase]
    val_cases: list[TrainingCase]
    sampler: PatchSampler
    augment: Any
    num_workers: int
    finetune: FinetuneSpec | None
    distributed: DistributedContext
    sample_log: Path | None


def train(preprocessed: str | Path | Sequence[str | Path], model_dir: str | Path, recipe: str | None = None,
          datasets: Sequence[str] | None = None, resume: bool = False, overwrite: bool = False,
          distributed: DistributedContext = SINGLE_PROCESS, sample_log: str | Path | None = None,
          **overrides: Any) -> Path:
    """Train a 2D U-Net on preprocessed data; returns the model folder.

    Args:
        preprocessed: one or more preprocessed folders (``plans.json`` + ``<dataset>/<case>.npz``), one plan.
        model_dir: output model folder.
        recipe: ``"default"`` (when None), ``"paper"`` (the paper as written) or ``"nnunet"``; ignored
            when resuming (the stored recipe is used).
        datasets: dataset names to train on (default: all in the folders); sampled balanced per dataset
            (``subjects_per_center=N`` in the overrides also keeps N subjects of each: equal counts).
        resume: continue from ``checkpoint_latest.pt`` with its optimizer, epoch and RNG state.
        overwrite: replace a model or checkpoints already in ``model_dir`` (otherwise an
            ``OutputConflictError``); the old files are removed only once the data and plans are valid.
        distributed: this process's place in a data-parallel run started by torchrun (default: alone);
            ``batch_size`` is then the global batch, split over the processes; rank 0 writes the folder.
        sample_log: a folder (outside the model folder) where each rank appends what its batches were
            cut from to ``samples_rank<r>.txt``; for checking data-parallel sampling. None: no log.
        **overrides: ``TrainConfig`` fields (``epochs``, ``iterations_per_epoch``, ``batch_size``,
            ``device``, ``seed``, ``fold``, ``num_workers``, ``augmentation``, ...); None values are ignored.

    Usage (minutes of training, so doctest does not run it; ``lgeseg_train`` is the same call)::

        from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess
        from lgeseg.training import train

        plan, _ = plan_and_preprocess([Path("raw/center1")], Path("pre"), preset="cpu")
        model_dir = train(Path("pre"), Path("models/center1"), augmentation="lge_dg", epochs=20, device="cpu")
    """
    config = recipe_for_run(recipe, model_dir, resume, **overrides)
    return run_training(config, preprocessed, model_dir, datasets, resume, overwrite=overwrite,
                        distributed=distributed, sample_log=sample_log)


def recipe_for_run(recipe: str | None, model_dir: str | Path, resume: bool = False, **overrides: Any) -> TrainConfig:
    """The recipe ``train`` runs with, before the plan resolves its batch size (``recipes.resolve_batch_size``).

    Resuming a model folder that has a ``model.json``: its recorded recipe (``recipe`` is ignored); else the
    named recipe (``"default"`` when None). ``overrides`` are ``TrainConfig`` fields; None values are ignored.
    ``lgeseg_train`` calls it too, to check the run's batch against the device's memory before training.

    Example:
        >>> config = recipe_for_run("paper", "models/new", epochs=3)  # a fresh run: the named recipe
        >>> config.name, config.epochs, config.batch_size
        ('paper', 3, 16)
    """
    model_dir = Path(model_dir)
    if not (resume and (model_dir / MODEL_INFO_FILE).is_file()):
        return get_recipe(recipe or DEFAULT_RECIPE, **overrides)
    _, info = read_model_metadata(model_dir)
    try:  # lgeseg 0.1 wrote "recipe": {} for a folder without one: the record's defaults
        return check_augmentation((info.recipe or TrainConfig()).replace(**overrides))
    except ValueError as err:
        raise InvalidInputError(f"{model_dir / MODEL_INFO_FILE}: field recipe: {err}") from err


def run_training(config: TrainConfig, preprocessed: str | Path | Sequence[str | Path], model_dir: str | Path,
                 datasets: Sequence[str] | None = None, resume: bool = False,
                 finetune: FinetuneSpec | None = None, overwrite: bool = False,
                 distributed: DistributedContext = SINGLE_PROCESS, sample_log: str | Path | None = None) -> Path:
    """The training run: data, split, state, epochs (train, validate, checkpoint, plot), then finish.

    Returns ``model_dir``. See ``train`` for the arguments; ``finetune`` sets initial weights,
    frozen blocks and the case split of a fine-tuning run. The folder is created only after the
    data, plans and network are known to be valid; a new folder that fails before its first
    checkpoint is removed again, so a failed start leaves no partial model folder.

    Usage (a preprocessed folder; ``train`` resolves the recipe and calls it)::

        from lgeseg.training.recipes import get_recipe
        model_dir = run_training(get_recipe("default", epochs=50, seed=0), ["work/preprocessed"], "work/model")
    """
    model_dir = Path(model_dir)
    check_augmentation(config)  # before any data is read
    check_model_folder(model_dir, resume, overwrite)
    data = open_training_data(preprocessed, datasets)
    if config.subjects_per_center is not None and finetune is None:
        kept = set(limit_subjects(data.case_keys, config.subjects_per_center))
        data = dataclasses.replace(data, entries=[e for e in data.entries if case_key(e[0]) in kept])
    config = resolve_batch_size(config, data.plan)  # the run's batch, recorded in model.json
    device = rank_device(resolve_device(config.device), distributed)
    main = distributed.is_main
    with process_group(distributed, device):
        state = _initial_state(config, data, device, finetune, distributed)
        if resume:
            if main:
                remove_stale_temporaries(model_dir)  # a half-written checkpoint of the interrupted run
            restore_state(state, model_dir / CHECKPOINT_LATEST_FILE)
        elif overwrite and main:
            clear_model_folder(model_dir)
        cleanup = _remove_if_failed_early(model_dir) if main else contextlib.nullcontext()
        logging_to_file = _log_to_file(model_dir / TRAINING_LOG_FILE) if main else contextlib.nullcontext()
        with cleanup, logging_to_file:
            run = _prepare_run(state, data, model_dir, finetune, distributed, sample_log)
            _train_epochs(state, run, resume)
    return model_dir


def _train_epochs(state: TrainingState, run: _Run, resume: bool) -> None:
    """Epochs until ``config.epochs`` (or the time budget), then ``_finish``; rank 0 validates and writes."""
    config, main = state.config, run.distributed.is_main
    if main:
        _log_start(state, run, resume)
    result, started, first = None, time.monotonic(), state.epoch
    while state.epoch < config.epochs and not broadcast_from_main(_out_of_time(config, started), run.distributed):
        sample_log = run.sample_log / f"samples_rank{state.rank}.txt" if run.sample_log else None
        stats = _all_ranks(train_epoch(state, run.sampler, run.augment, run.num_workers, sample_log=sample_log),
                           state.device, run.distributed)
        if not main:
            state.epoch += 1
            continue
        result = validate(state.model_network, run.val_cases, run.data.plan.labels, state.network.divisor,
                          state.device, config.batch_size, config.mixed_precision, run.data.ignore_label)
        _end_epoch(state, run, stats, result)
        log.info("%s", eta_text(state.epoch - first, config.epochs - state.epoch, time.monotonic() - started,
                                config.max_minutes))
    if main:
        _finish(state, run, result)


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def eta_text(epochs_done: int, epochs_left: int, elapsed_s: float, max_minutes: float | None = None) -> str:
    """The overall time left, from the mean wall time of this run's epochs (validation and checkpoints included).

    With a time budget (``max_minutes``) the run ends after the epoch that crosses it, so the time left
    is the smaller of the epochs' and the budget's.

    Example:
        >>> eta_text(2, 8, 120.0)
        'ETA 8 min (10 epochs: 2 done, 8 left at 1 min each)'
        >>> eta_text(2, 98, 120.0, max_minutes=30)
        'ETA 28 min (time budget 30 min: 2 epochs done, about 28 more in the budget, 70 left unrun)'
    """
    per_epoch = elapsed_s / max(1, epochs_done)
    left = epochs_left * per_epoch
    total = epochs_done + epochs_left
    if max_minutes is not None and elapsed_s + left > 60 * max_minutes:
        budget_left = max(0.0, 60 * max_minutes - elapsed_s)
        more = min(epochs_left, int(-(-budget_left // per_epoch)))
        return (f"ETA {_duration(more * per_epoch)} (time budget {max_minutes:g} min: {epochs_done} epochs done, "
                f"about {more} more in the budget, {epochs_left - more} left unrun)")
    return (f"ETA {_duration(left)} ({total} epochs: {epochs_done} done, {epochs_left} left at "
            f"{_duration(per_epoch)} each)")


def _all_ranks(stats: EpochStats, device: torch.device, distributed: DistributedContext) -> EpochStats:
    """The epoch over all ranks: mean loss and data wait, summed samples/s, the slowest/busiest rank's seconds."""
    if not distributed.enabled:
        return stats
    loss, wait, rate = reduce_numbers([stats.loss, stats.data_wait_fraction, stats.samples_per_second],
                                      device, distributed)
    seconds, cpu_seconds = reduce_numbers([stats.seconds, stats.cpu_seconds], device, distributed, op="max")
    size = distributed.world_size
    return EpochStats(loss / size, seconds, wait / size, rate, cpu_seconds)


def _out_of_time(config: TrainConfig, started: float) -> bool:
    if config.max_minutes is None or time.monotonic() - started < 60 * config.max_minutes:
        return False
    log.info("time budget of %.1f minutes used: stopping here", config.max_minutes)
    return True


#: Files a training run writes into its model folder (``--overwrite`` removes exactly these).
MODEL_FILES: tuple[str, ...] = (*METADATA_FILES, *CHECKPOINT_FILES)
#: The files that make a folder a model (or the start of one): ``model.json`` and the checkpoints.
_MODEL_MARKERS: tuple[str, ...] = (MODEL_INFO_FILE, *CHECKPOINT_FILES)


def is_model_folder(model_dir: Path) -> bool:
    """True when ``model_dir`` is lgeseg's own kind of folder: it holds ``model.json`` or a checkpoint, or
    only the files a training run writes, among them ``training_log.txt`` (a run stopped before its model.json).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> (Path(tmp.name) / "plans.json").touch()  # a plans.json alone may be anybody's
        >>> is_model_folder(Path(tmp.name))
        False
        >>> (Path(tmp.name) / "checkpoint_best.pt").touch()
        >>> is_model_folder(Path(tmp.name))
        True
        >>> tmp.cleanup()
    """
    if any((model_dir / name).exists() for name in _MODEL_MARKERS):
        return True
    names = [p.name for p in model_dir.iterdir()] if model_dir.is_dir() else []
    own = set(MODEL_FILES)
    return TRAINING_LOG_FILE in names and all(
        name in own or any(name.startswith(f".{file}.") for file in own) for name in names)


def check_model_folder(model_dir: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse to start a run that would replace a model or files of another origin: nothing is written here.

    Raises ``FileNotFoundError`` when resuming without ``checkpoint_latest.pt``, ``NotADirectoryError``
    when ``model_dir`` is a file, and ``OutputConflictError`` naming the folder when a fresh run (neither
    ``resume`` nor ``overwrite``) would write into a folder that holds a model (``model.json``) or any
    checkpoint, or when any run would write into a non-empty folder that is not a model folder
    (``is_model_folder``: a folder of the user's own ``plans.json``, notes, or data), even with ``overwrite``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> check_model_folder(Path(tmp.name), resume=False)  # empty: a fresh run may start
        >>> (Path(tmp.name) / "model.json").touch()
        >>> check_model_folder(Path(tmp.name), resume=False)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: ...: already holds a model (model.json); use --overwrite to replace
        it, ...
        >>> check_model_folder(Path(tmp.name), resume=True)
        Traceback (most recent call last):
        FileNotFoundError: .../checkpoint_latest.pt: nothing to continue (no checkpoint_latest.pt in ...)
        >>> (Path(tmp.name) / "model.json").unlink()
        >>> (Path(tmp.name) / "plans.json").touch()  # the user's own plans.json, no model
        >>> check_model_folder(Path(tmp.name), resume=False, overwrite=True)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: ...: not an lgeseg model folder (no model.json or checkpoint; it
        holds ...
        >>> tmp.cleanup()
    """
    latest = model_dir / CHECKPOINT_LATEST_FILE
    if model_dir.exists() and not model_dir.is_dir():
        raise NotADirectoryError(f"{model_dir}: the model folder is a file")
    if resume:
        if not latest.is_file():
            raise FileNotFoundError(f"{latest}: nothing to continue (no checkpoint_latest.pt in {model_dir})")
        return
    present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    if present and not is_model_folder(model_dir):
        shown = ", ".join(present[:5]) + (" ..." if len(present) > 5 else "")
        raise OutputConflictError(f"{model_dir}: not an lgeseg model folder (no model.json or checkpoint; it holds "
                                  f"{shown}); training would write {', '.join(MODEL_FILES[:2])} ... into it: choose "
                                  "a new or empty output folder")
    found = [name for name in _MODEL_MARKERS if (model_dir / name).exists()]
    if found and not overwrite:
        hint = "--continue to resume it, " if latest.is_file() else ""
        raise OutputConflictError(f"{model_dir}: already holds a model ({', '.join(found)}); use {hint}--overwrite "
                                  "to replace it, or choose another output folder")


def clear_model_folder(model_dir: Path) -> None:
    """Remove the files a training run writes (``MODEL_FILES``) from ``model_dir``; other files stay.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name in ("model.json", "checkpoint_final.pt", "notes.txt"):
        ...     (Path(tmp.name) / name).touch()
        >>> clear_model_folder(Path(tmp.name))
        >>> [p.name for p in Path(tmp.name).iterdir()]  # files of other origin stay
        ['notes.txt']
        >>> tmp.cleanup()
    """
    for name in MODEL_FILES:
        (model_dir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def _remove_if_failed_early(model_dir: Path) -> Iterator[None]:
    """Remove ``model_dir`` again if this run created it and failed before writing a checkpoint."""
    created = not model_dir.exists()
    try:
        yield
    except BaseException:
        if created and model_dir.is_dir() and not (model_dir / CHECKPOINT_LATEST_FILE).exists():
            shutil.rmtree(model_dir, ignore_errors=True)
        raise


def _initial_state(config: TrainConfig, data: TrainingData, device: torch.device,
                   finetune: FinetuneSpec | None, distributed: DistributedContext) -> TrainingState:
    if finetune is None:
        return build_state(config, data.plan, device, distributed=distributed, ignore_index=data.ignore_label)
    weights = load_checkpoint(finetune.init_checkpoint)["network"]
    return build_state(config, data.plan, device, init_weights=weights, trainable=finetune.trainable,
                       distributed=distributed, ignore_index=data.ignore_label)


def _split(config: TrainConfig, data: TrainingData, model_dir: Path,
           finetune: FinetuneSpec | None) -> tuple[list[str], list[str]]:
    """Training and validation case keys of the run; writes ``splits.json`` (call on rank 0 only)."""
    if finetune is None:
        folds = load_or_create_splits(model_dir / SPLITS_FILE, data.case_keys, config.num_folds)
        return fold_of(folds, config.fold, model_dir / SPLITS_FILE)
    train_keys, val_keys = list(finetune.target_cases), list(finetune.val_cases)
    save_json([{"train": train_keys, "val": val_keys}], model_dir / SPLITS_FILE)
    return train_keys, val_keys


def _prepare_run(state: TrainingState, data: TrainingData, model_dir: Path, finetune: FinetuneSpec | None,
                 distributed: DistributedContext, sample_log: str | Path | None) -> _Run:
    config, plan = state.config, data.plan
    split = _split(config, data, model_dir, finetune) if distributed.is_main else None
    train_keys, val_keys = broadcast_from_main(split, distributed)
    train_cases = load_cases(data.entries, train_keys)
    val_cases = load_cases(data.entries, val_keys) if distributed.is_main else []
    if config.iterations_per_epoch is None:  # the paper's epoch: one pass over the training slices
        slices = sum(case.image.shape[1] for case in train_cases)
        state.config = config = config.replace(iterations_per_epoch=max(1, math.ceil(slices / config.batch_size)))
    preset = get_preset(config.augmentation)
    spacing_yx = tuple(plan.target_spacing[1:])
    num_classes, ignore_label = plan.topology.num_classes, data.ignore_label  # the ignore value is no output class
    # Crops cover the preset's rotation/zoom-out, capped at crop_margin * patch (beyond: zero padding).
    needed = required_crop_size(preset, tuple(plan.patch_size), spacing_yx)
    crop = tuple(max(p, min(n, int(math.ceil(p * config.crop_margin))))
                 for p, n in zip(plan.patch_size, needed, strict=True))
    rank_batch = split_batch(config.batch_size, distributed.world_size)[distributed.rank]
    sampler = PatchSampler(train_cases, plan.patch_size, crop, rank_batch, config.foreground_fraction)

    def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> Any:
        return augment_batch(images, labels, preset, tuple(plan.patch_size), spacing_yx, generator, num_classes,
                             ignore_label=ignore_label)

    workers = config.num_workers if config.num_workers is not None else min(2, os.cpu_count() or 1)
    run = _Run(data, model_dir, train_cases, val_cases, sampler, augment, workers, finetune,
               distributed, Path(sample_log) if sample_log is not None else None)
    if distributed.is_main:
        write_model_metadata(model_dir, plan, _model_info(state, run), data.fingerprint)
    return run


def _model_info(state: TrainingState, run: _Run, postprocessing: str = "lcc",
                extras: dict[str, Any] | None = None) -> ModelInfo:
    history, finetune = state.history, run.finetune
    summary: dict[str, Any] = {
        "device": str(state.device),
        "compiled": use_compile(state.config, state.device),
        "cuda_graph": state.step_graph is not None,
        "processes": run.distributed.world_size,
        "num_workers": run.num_workers,
        "train_cases": len(run.train_cases),
        "val_cases": len(run.val_cases),
        "best_val_mean_dice": None if state.best_dice == -math.inf else state.best_dice,
        "last_val_dice": {k[len("val_dice_"):]: v[-1] for k, v in history.items() if k.startswith("val_dice_") and v},
        "seconds_per_epoch": _mean(history.get("seconds", [])),
        "data_wait_fraction": _mean(history.get("data_wait_fraction", [])),
        "samples_per_second": _mean(history.get("samples_per_second", [])),
        "preprocessed": [str(p) for p in run.data.folders],
    }
    summary.update(extras or {})
    return ModelInfo(
        lgeseg_version=__version__, labels=dict(run.data.plan.labels), channel_names=run.data.channel_names,
        recipe=state.config, datasets=run.data.datasets,
        fold=state.config.fold, postprocessing=postprocessing,
        parent=finetune.parent if finetune else None, trainable=state.trainable,
        target_cases=finetune.target_cases if finetune else None, epochs_trained=state.epoch, extras=summary,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _end_epoch(state: TrainingState, run: _Run, stats: EpochStats, result: ValidationResult) -> None:
    state.epoch += 1
    record = {"train_loss": stats.loss, "val_loss": result.loss, "val_mean_dice": result.mean_dice,
              "lr": state.optimizer.param_groups[0]["lr"], "seconds": stats.seconds,
              "data_wait_fraction": stats.data_wait_fraction, "samples_per_second": stats.samples_per_second,
              "cpu_seconds": stats.cpu_seconds}
    record.update({f"val_dice_{name}": value for name, value in result.dice.items()})
    for key, value in record.items():
        state.history.setdefault(key, []).append(float(value))
    if not math.isnan(result.mean_dice) and result.mean_dice > state.best_dice:
        state.best_dice = result.mean_dice
        save_state(state, run.model_dir / CHECKPOINT_BEST_FILE, with_optimizer=False)
    save_state(state, run.model_dir / CHECKPOINT_LATEST_FILE)
    plot_progress(state.history, run.model_dir / PROGRESS_PLOT_FILE)
    save_json(_model_info(state, run), run.model_dir / MODEL_INFO_FILE)  # plans.json is written once, at the start
    dice = " ".join(f"{name} {value:.4f}" for name, value in result.dice.items())
    log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val Dice mean %.4f (%s), lr %.2e, %.1f s, "
             "%.0f samples/s, data wait %.1f%%", state.epoch, state.config.epochs, stats.loss, result.loss,
             result.mean_dice, dice, record["lr"], stats.seconds, stats.samples_per_second,
             100 * stats.data_wait_fraction)


def _finish(state: TrainingState, run: _Run, result: ValidationResult | None) -> None:
    save_state(state, run.model_dir / CHECKPOINT_FINAL_FILE, with_optimizer=False)
    if result is None:  # resumed a finished run: validate the final weights once
        config = state.config
        result = validate(state.model_network, run.val_cases, run.data.plan.labels, state.network.divisor,
                          state.device, config.batch_size, config.mixed_precision, run.data.ignore_label)
    labels = [v for v in run.data.plan.labels.values() if v != 0]
    postprocessing = select_postprocessing(result.predictions, [c.label for c in run.val_cases], labels,
                                           run.data.ignore_label)
    save_json(_model_info(state, run, postprocessing), run.model_dir / MODEL_INFO_FILE)
    write_model_card(run.model_dir)
    _write_harmonization_reference(run)
    log.info("finished %d epochs; best val mean Dice %.4f; postprocessing %r; model folder %s",
             state.epoch, state.best_dice, postprocessing, run.model_dir)


def _write_harmonization_reference(run: _Run) -> None:
    """Fit the histogram-matching reference from the training cases' raw images into the model folder.

    Makes ``lgeseg_predict --harmonize histogram`` work on every model. The reference comes from the
    training cases of every preprocessed folder; a raw image that has moved only costs the reference.
    """
    train_ids = [case.key.split("/", 1)[1] for case in run.train_cases]
    try:
        fit_reference_from_preprocessed(run.data.folders, run.model_dir, run.data.datasets, train_ids)
    except (FileNotFoundError, ValueError) as err:
        log.warning("no histogram-matching reference written (%s); fit one later with "
                    "`lgeseg_harmonize fit-reference`", err)


def _log_start(state: TrainingState, run: _Run, resume: bool) -> None:
    verb = f"resuming from epoch {state.epoch}" if resume else "starting"
    log.info("%s: %d training / %d validation cases from %s, datasets %s, device %s, %d loader threads",
             verb, len(run.train_cases), len(run.val_cases), ", ".join(map(str, run.data.folders)),
             ", ".join(run.data.datasets), state.device, run.num_workers)
    if run.distributed.enabled:
        size = run.distributed.world_size
        log.info("data parallel: %d processes (%s), global batch %d split %s", size,
                 "nccl" if state.device.type == "cuda" else "gloo", state.config.batch_size,
                 split_batch(state.config.batch_size, size))
    log.info("recipe: %s", state.config.to_dict())


@contextlib.contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Send lgeseg's INFO log records to ``path`` (appending) while training."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("lgeseg")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
