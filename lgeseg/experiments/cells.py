"""Running the grid's cells: the shared data (``prepare``), then one cell = one model + its scores.

``prepare`` generates (or finds) every center's raw training and test data, preprocesses the
training center with a planner preset and every other center with its plans (so all models share
one plan), and writes ``OUT/grid.json``: the settings, the folders and every cell. A cell job needs
nothing else: ``run_cell(load_workspace(OUT/grid.json), cell)`` makes the cell's model (reusing a
finished one, continuing an interrupted one), scores it on its test sets, and writes
``OUT/cells/<id>/result.json`` last; a cell with that file is done.

Usage::

    workspace = prepare(make_config("tiny", out_dir=Path("runs/tiny")))
    cells = build_grid(workspace.config, list(workspace.test), workspace.num_encoder_blocks)
    write_grid(workspace, cells)
    result = run_cell(workspace, cells[0])  # {"cell": {...}, "scores": [...], "seconds": ...}
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lgeseg.core.records import PLANS_FILE, Plan, load_json, save_json
from lgeseg.experiments.grid import Cell, ExperimentsConfig, cell_folder, gan_pair
from lgeseg.model.folder import CHECKPOINT_FINAL_FILE, CHECKPOINT_LATEST_FILE

logger = logging.getLogger(__name__)

GRID_FILE = "grid.json"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """What every cell shares.

    Attributes:
        config: the settings.
        device: torch device the cells use.
        preprocessed: center (and ``config.pretrain_source``'s name) -> preprocessed folder (one plan for all).
        test: center -> raw dataset of its test cases.
        num_encoder_blocks: encoder blocks of the planned network.
    """

    config: ExperimentsConfig
    device: str
    preprocessed: dict[str, Path]
    test: dict[str, Path]
    num_encoder_blocks: int


def _raw_data(config: ExperimentsConfig) -> list[Path]:
    """The training datasets, one per center; for synthetic centers the test datasets of the same names are
    made too (in ``workspace_for``'s test folders)."""
    out = Path(config.out_dir)
    if config.raw_dir is None or config.test_dir is None:
        from lgeseg.synth import generate_multicenter  # deferred: SciPy, only for a synthetic run

        centers = config.synthetic_centers
        train = generate_multicenter(out / "raw", config.cases_per_center, config.data_seed, centers,
                                     in_plane_size=config.in_plane_size)
        generate_multicenter(out / "test", config.test_cases_per_center, config.data_seed + 1, centers,
                             in_plane_size=config.in_plane_size)
        return train
    return sorted(p for p in Path(config.raw_dir).iterdir() if (p / "dataset.json").is_file())


def prepare(config: ExperimentsConfig) -> Workspace:
    """Data and preprocessing for every center (reused when already there); returns the workspace.

    Usage (generates the synthetic centers, or reads ``raw_dir``/``test_dir``, and preprocesses them: minutes)::

        workspace = prepare(make_config("tiny", out_dir=Path("runs/tiny")))
        workspace.preprocessed["center1"], workspace.num_encoder_blocks
    """
    # deferred: the launcher and --summary-only start without torch
    from lgeseg.core.device import resolve_device
    from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

    device = str(resolve_device(config.device))
    train_raw = _raw_data(config)
    names = [p.name for p in train_raw]
    if config.train_center not in names:
        source = Path(config.out_dir) / "raw" if config.raw_dir is None else config.raw_dir
        raise ValueError(f"train_center {config.train_center!r}: no such center in {source} "
                         f"(found {', '.join(sorted(names))})")
    order = [config.train_center] + [n for n in names if n != config.train_center]
    raw = {p.name: p for p in train_raw}
    if config.pretrain_source is not None:
        source = Path(config.pretrain_source)
        if not (source / "dataset.json").is_file():
            raise FileNotFoundError(f"pretrain_source {source}: expected a raw dataset (dataset.json), found none")
        if source.name in raw:
            raise ValueError(f"pretrain_source {source}: its folder name must differ from the centers' "
                             f"({', '.join(order)}), found {source.name!r}")
        raw[source.name] = source
    folders = workspace_for(config, order, device, num_encoder_blocks=0)  # the blocks: the plan's, below
    missing = [str(p) for p in folders.test.values() if not (p / "dataset.json").is_file()]
    if missing:
        raise FileNotFoundError(f"test_dir: no test dataset (dataset.json) for center(s) {', '.join(missing)}")
    pre = folders.preprocessed
    for name in pre:
        if (pre[name] / PLANS_FILE).is_file():
            continue
        if name == config.train_center:
            preset = config.preset or ("cpu" if device == "cpu" else "default")
            plan_and_preprocess([raw[name]], pre[name], preset=preset)
        else:
            plan_and_preprocess([raw[name]], pre[name], plans_from=pre[config.train_center] / PLANS_FILE)
    plan = Plan.from_dict(load_json(pre[config.train_center] / PLANS_FILE))
    return dataclasses.replace(folders, num_encoder_blocks=plan.topology.num_stages)


def workspace_for(config: ExperimentsConfig, centers: Sequence[str], device: str, num_encoder_blocks: int) -> Workspace:
    """The workspace ``prepare`` makes for ``centers`` (training center first), making no data.

    Its folders are where ``prepare`` puts them: ``OUT/preprocessed/<center>`` (also for the
    ``pretrain_source`` dataset) and the test datasets ``TEST/<center>`` (``TEST``: ``config.test_dir``,
    or ``OUT/test`` for synthetic centers). For a grid
    whose data is already in place, or whose cells need none (finished ones, see ``write_result``).

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> workspace = workspace_for(make_config("tiny", out_dir=Path("runs/x")), ["center1", "center2"], "cpu", 4)
        >>> workspace.preprocessed["center2"].as_posix(), workspace.test["center2"].as_posix()
        ('runs/x/preprocessed/center2', 'runs/x/test/center2')
    """
    out = Path(config.out_dir)
    test = out / "test" if config.test_dir is None else Path(config.test_dir)  # make_config: both dirs or neither
    sources = [] if config.pretrain_source is None else [Path(config.pretrain_source).name]
    return Workspace(config, device, {name: out / "preprocessed" / name for name in [*centers, *sources]},
                     {name: test / name for name in centers}, num_encoder_blocks)


def write_grid(workspace: Workspace, cells: list[Cell]) -> Path:
    """Write ``OUT/grid.json`` (settings, folders, cells) that every cell job reads; returns its path.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> workspace = workspace_for(make_config("tiny", out_dir=Path(tmp.name)), ["center1"], "cpu", 4)
        >>> path = write_grid(workspace, [train_cell(("center1",), "none", seed=0)])
        >>> path.name, sorted(load_json(path))
        ('grid.json', ['cells', 'config', 'device', 'num_encoder_blocks', 'preprocessed', 'test'])
        >>> tmp.cleanup()
    """
    path = Path(workspace.config.out_dir) / GRID_FILE
    save_json({"config": workspace.config.to_dict(), "device": workspace.device,
               "preprocessed": {k: str(v) for k, v in workspace.preprocessed.items()},
               "test": {k: str(v) for k, v in workspace.test.items()},
               "num_encoder_blocks": workspace.num_encoder_blocks,
               "cells": [cell.to_dict() for cell in cells]}, path)
    return path


def load_workspace(path: str | Path) -> tuple[Workspace, dict[str, Cell]]:
    """Read ``grid.json``: (workspace, cells by id).

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> workspace = workspace_for(make_config("tiny", out_dir=Path(tmp.name)), ["center1"], "cpu", 4)
        >>> read_back, cells = load_workspace(write_grid(workspace, [train_cell(("center1",), "none", seed=0)]))
        >>> read_back == workspace, list(cells)
        (True, ['train_center1_none_s0'])
        >>> tmp.cleanup()
    """
    data = load_json(path)
    workspace = Workspace(ExperimentsConfig.from_dict(data["config"]), data["device"],
                          {k: Path(v) for k, v in data["preprocessed"].items()},
                          {k: Path(v) for k, v in data["test"].items()}, int(data["num_encoder_blocks"]))
    cells = [Cell.from_dict(c) for c in data["cells"]]
    return workspace, {cell.id: cell for cell in cells}


def _done(folder: Path) -> bool:
    return (folder / CHECKPOINT_FINAL_FILE).is_file()


def _resumable(folder: Path) -> bool:
    """True when ``folder`` holds an interrupted run to continue; a run that stopped before its first
    checkpoint is removed so it can start afresh."""
    if (folder / CHECKPOINT_LATEST_FILE).is_file():
        return True
    if folder.exists():
        shutil.rmtree(folder)
    return False


def _amount(amount: str) -> dict[str, Any]:
    return {"fraction": int(amount[:-1]) / 100} if amount.endswith("%") else {"cases": int(amount)}


def _finished_model(config: ExperimentsConfig, cell: Cell, base_id: str | None) -> Path:
    base = cell_folder(config.out_dir, base_id or "") / "model"
    if not _done(base):
        raise FileNotFoundError(f"{base}: cell {cell.id} needs the finished model of cell {base_id}")
    return base


def _make_model(workspace: Workspace, cell: Cell, folder: Path) -> Path | None:
    """Train or fine-tune the cell's model (returns its folder), or train a CycleGAN cell's GAN (returns None)."""
    from lgeseg.training import finetune, train  # deferred: torch, as in prepare()

    config = workspace.config
    if cell.kind == "cyclegan":
        for needed in cell.needs:
            _finished_model(config, cell, needed)
        _make_gan(workspace, cell, folder / "gan")
        return None
    base = _finished_model(config, cell, cell.base) if cell.kind != "train" else None
    model = folder / "model"
    if _done(model):
        return model
    if base is None:
        train([workspace.preprocessed[c] for c in cell.centers], model, recipe=config.recipe, epochs=config.epochs,
              iterations_per_epoch=config.iterations_per_epoch, max_minutes=config.train_minutes,
              augmentation=cell.augmentation, seed=cell.seed, device=workspace.device,
              subjects_per_center=cell.subjects_per_center, resume=_resumable(model))
    else:
        finetune(base, workspace.preprocessed[cell.centers[0]], model, trainable=cell.trainable,
                 epochs=config.finetune_epochs, seed=cell.seed, device=workspace.device,
                 iterations_per_epoch=config.iterations_per_epoch, resume=_resumable(model),
                 **_amount(cell.amount or "100%"))
    return model


def gan_config(config: ExperimentsConfig, seed: int) -> Any:
    """The ``CycleGANConfig`` of the grid's CycleGAN cells: length, patch and size from ``config``.

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> gan = gan_config(make_config("paper", out_dir=Path("runs/paper")), seed=3)
        >>> gan.generator_features, gan.generator_blocks, gan.discriminator_features, gan.patch_size, gan.seed
        (64, 9, 64, (256, 256), 3)
    """
    from lgeseg.harmonization.cyclegan import CycleGANConfig  # deferred: torch, as in prepare()

    return CycleGANConfig(epochs=config.gan_epochs, iterations_per_epoch=config.gan_iterations,
                          patch_size=(config.gan_patch, config.gan_patch), seed=seed,
                          generator_features=config.gan_features, generator_blocks=config.gan_blocks,
                          discriminator_features=config.gan_features)


def _make_gan(workspace: Workspace, cell: Cell, gan: Path) -> None:
    from lgeseg.harmonization.cyclegan_train import train_cyclegan  # deferred: torch, as in prepare()

    if _done(gan):
        return
    config = workspace.config
    source, target = gan_pair(cell, config.train_center)
    train_cyclegan(workspace.preprocessed[source], workspace.preprocessed[target], gan, gan_config(config, cell.seed),
                   device=workspace.device, resume=_resumable(gan))


def _scored_model(workspace: Workspace, cell: Cell, model: Path | None, center: str) -> tuple[Path, str | None]:
    """(model folder, GAN direction) that scores ``center``: a CycleGAN cell scores the model of the pair's
    other center, translating with the generator towards that center (None: no GAN)."""
    if model is not None:
        return model, None
    source, _ = gan_pair(cell, workspace.config.train_center)
    if center == source:
        return _finished_model(workspace.config, cell, cell.reverse_base), "source-to-target"
    return _finished_model(workspace.config, cell, cell.base), "target-to-source"


def _per_case_dice(metrics_csv: Path) -> dict[str, dict[str, float | None]]:
    """``{case: {"blood_pool": Dice, "myocardium": Dice}}`` from ``evaluate_folders``' ``metrics.csv``."""
    def number(text: str) -> float | None:
        value = float(text)
        return None if value != value else value  # NaN: undefined Dice (both empty)

    with open(metrics_csv, newline="") as handle:
        return {row["case"]: {s: number(row[f"dice_{s}"]) for s in ("blood_pool", "myocardium")}
                for row in csv.DictReader(handle)}


def _score(workspace: Workspace, folder: Path, model: Path, center: str, harmonization: str,
           direction: str | None = None) -> dict[str, Any]:
    """Predict ``center``'s test cases with ``model`` (harmonized as asked), evaluate, return per-case Dice.

    ``direction`` is the CycleGAN generator (``target-to-source`` translates while predicting; the other
    direction writes translated images under ``translated/`` first, then predicts them)."""
    # deferred like this module's other stage imports: the launcher and --summary-only start without torch
    from lgeseg.experiments.scoring import predict_and_score
    from lgeseg.harmonization.apply import harmonize_files

    config = workspace.config
    name = center if harmonization == "none" else f"{center}_{harmonization}"
    harmonize = {"none": None, "histogram": "histogram", "cyclegan": f"cyclegan:{folder / 'gan'}"}[harmonization]
    test = workspace.test[center]
    images = test / "imagesTr"
    if harmonization == "cyclegan" and direction == "source-to-target":
        images = folder / "translated" / name
        harmonize_files(test / "imagesTr", images, harmonize, device=workspace.device, direction=direction,
                        overwrite=True)
        harmonize = None
    predict_and_score(images, test, [model], folder / "predictions" / name, folder / "metrics" / name,
                      device=workspace.device, mirroring=config.mirroring, postprocess=config.postprocess,
                      harmonize=harmonize, window=config.window)
    return {"center": center, "harmonization": harmonization,
            "cases": _per_case_dice(folder / "metrics" / name / "metrics.csv")}


def _same_cell(stored: Any, cell: Cell) -> bool:
    """True when a ``result.json``'s cell record is ``cell`` (fields added to ``Cell`` since it was written
    count with their defaults, so a finished cell of an older grid is not run again)."""
    try:
        return isinstance(stored, dict) and Cell.from_dict(stored) == cell
    except ValueError:
        return False


def finished_result(out_dir: str | Path, cell: Cell) -> dict[str, Any] | None:
    """The stored result of ``cell`` (``OUT/cells/<id>/result.json`` recording this very cell), or None
    while the cell is not finished (no result yet, or one left by a different cell of the same id).

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cell = train_cell(("center1",), "none", seed=0)
        >>> finished_result(tmp.name, cell) is None  # nothing run yet
        True
        >>> _ = write_result(tmp.name, cell, [], seconds=12.0, device="cpu")
        >>> finished_result(tmp.name, cell)["seconds"]
        12.0
        >>> tmp.cleanup()
    """
    result_path = cell_folder(out_dir, cell) / "result.json"
    if not result_path.is_file():
        return None
    stored = load_json(result_path)
    return stored if _same_cell(stored.get("cell"), cell) else None


def run_cell(workspace: Workspace, cell: Cell) -> dict[str, Any]:
    """Make the cell's model and score it; returns (and writes to ``result.json``) the result.

    A cell whose ``result.json`` records the same cell is not run again. Returns
    ``{"cell": cell dict, "scores": [{"center", "harmonization", "cases": {case: {structure: Dice}}}],
    "seconds": wall seconds, "device": str}``.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> workspace = workspace_for(make_config("tiny", out_dir=Path(tmp.name)), ["center1"], "cpu", 4)
        >>> cell = train_cell(("center1",), "none", seed=0)
        >>> _ = write_result(tmp.name, cell, [], seconds=12.0, device="cpu")  # a finished cell (scored on nothing)
        >>> run_cell(workspace, cell)["seconds"]  # its result.json records this cell: not run again
        12.0
        >>> tmp.cleanup()
    """
    stored = finished_result(workspace.config.out_dir, cell)
    if stored is not None:
        return stored
    folder = cell_folder(workspace.config.out_dir, cell)
    start = time.perf_counter()
    logger.info("== cell %s", cell.id)
    model = _make_model(workspace, cell, folder)
    scores = []
    for center, harmonization in cell.scores:
        scored, direction = _scored_model(workspace, cell, model, center)
        scores.append(_score(workspace, folder, scored, center, harmonization, direction))
    return write_result(workspace.config.out_dir, cell, scores, time.perf_counter() - start, workspace.device)


def write_result(out_dir: str | Path, cell: Cell, scores: list[dict[str, Any]], seconds: float,
                 device: str) -> dict[str, Any]:
    """Write the result of a finished cell, ``OUT/cells/<id>/result.json``, as ``run_cell`` does; returns it.

    A cell with this file is done: ``run_cell`` returns it without running, ``summarize`` reads its scores.

    Args:
        out_dir: the grid's folder (``OUT``).
        cell: the cell.
        scores: ``[{"center", "harmonization", "cases": {case: {"blood_pool": Dice, "myocardium": Dice}}}]``,
            one per test set the cell's model was scored on.
        seconds: the cell's wall time.
        device: the torch device it ran on.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cases = {"c2_000": {"blood_pool": 0.9, "myocardium": 0.7}}
        >>> scores = [{"center": "center2", "harmonization": "none", "cases": cases}]
        >>> result = write_result(tmp.name, train_cell(("center1",), "none", seed=0), scores, 12.0, "cpu")
        >>> sorted(result), [p.relative_to(tmp.name).as_posix() for p in Path(tmp.name).rglob("*.json")]
        (['cell', 'device', 'scores', 'seconds'], ['cells/train_center1_none_s0/result.json'])
        >>> tmp.cleanup()
    """
    result = {"cell": cell.to_dict(), "scores": scores, "seconds": seconds, "device": device}
    save_json(result, cell_folder(out_dir, cell) / "result.json")
    return result
