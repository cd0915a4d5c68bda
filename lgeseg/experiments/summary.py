"""The summary step: collect whatever cells finished into per-case rows, Table 5 (mean ± SD over
seeds) and ``results.json``.

A *row* is one test case scored by one cell's model: the cell's settings, the test center, the
harmonization, the case, and the Dice of blood pool, myocardium and their mean. Every table and
figure is an aggregation of rows: first the mean over a center's test cases per seed, then the mean
and the sample standard deviation over seeds (the paper's "averaged over five runs").

Example:
    >>> format_cell(mean_sd([0.82, 0.86, 0.84]))
    '0.840 ± 0.020'

Usage::

    rows, missing = collect(Path("runs/quick"), cells)
    table = table_5(rows, config, num_encoder_blocks)  # {column: {center: {"mean", "sd", "n"}}}
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json, save_json
from lgeseg.experiments.grid import (
    Cell,
    ExperimentsConfig,
    cell_folder,
    experiment_1_augmentations,
    main_trainable,
    subjects_for,
)

#: Table 5 column -> header ("experiment: setting"), in the paper's order; a column of an extra
#: augmentation preset of experiment 1 (``extra_augmentations``) is named after the preset, header ``1: <preset>``.
COLUMNS: dict[str, str] = {
    "no_augmentation": "1: no augmentation",
    "spatial": "1: spatial",
    "spatial_intensity": "1: spatial + intensity",
    "histogram": "2: histogram matching",
    "cyclegan": "2: CycleGAN",
    "transfer": "3: transfer learning",
    "multi_center": "4: multi-center",
}
_COLUMN_OF_AUGMENTATION = {"none": "no_augmentation", "spatial": "spatial", "spatial_intensity": "spatial_intensity"}

Row = dict[str, Any]


def column_header(column: str) -> str:
    """The header of a Table 5 column: ``COLUMNS``' text, or ``1: <preset>`` for an extra augmentation preset.

    Example:
        >>> column_header("transfer"), column_header("lge_dg")
        ('3: transfer learning', '1: lge_dg')
    """
    return COLUMNS.get(column, f"1: {column}")


def collect(out_dir: Path, cells: Sequence[Cell]) -> tuple[list[Row], list[str]]:
    """Rows of every finished cell of ``cells`` and the ids of those without a result.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.cells import write_result
        >>> from lgeseg.experiments.grid import train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cells = [train_cell(("center1",), "none", seed) for seed in (0, 1)]  # two seeds, tested on center2
        >>> for cell, dice in zip(cells, (0.8, 0.9)):
        ...     cases = {"c2_000": {"blood_pool": dice, "myocardium": dice - 0.2}}
        ...     score = {"center": "center2", "harmonization": "none", "cases": cases}
        ...     _ = write_result(tmp.name, cell, [score], seconds=5.0, device="cpu")
        >>> rows, missing = collect(Path(tmp.name), [*cells, train_cell(("center1",), "spatial", 0)])
        >>> len(rows), missing, rows[0]["case"], round(rows[0]["dice"], 3)  # dice: mean of blood pool and myocardium
        (2, ['train_center1_spatial_s0'], 'c2_000', 0.7)
        >>> tmp.cleanup()
    """
    rows: list[Row] = []
    missing = []
    for cell in cells:
        path = cell_folder(out_dir, cell) / "result.json"
        if not path.is_file():
            missing.append(cell.id)
            continue
        for score in load_json(path)["scores"]:
            for case, dice in score["cases"].items():
                rows.append(case_row(cell, score["center"], score["harmonization"], case, dice))
    return rows, missing


def case_row(cell: Cell, center: str, harmonization: str, case: str, dice: dict[str, float | None]) -> Row:
    """The row of one test case scored by ``cell``'s model, as ``collect`` makes it from ``result.json``.

    Args:
        cell: the grid cell whose model was scored.
        center: the test center; harmonization: ``"none"``, ``"histogram"`` or ``"cyclegan"``.
        case: the test case id.
        dice: 3D Dice per structure, ``{"blood_pool": ..., "myocardium": ...}`` (None: undefined).

    Returns:
        The cell's settings, ``center``, ``harmonization``, ``case``, ``blood_pool``, ``myocardium``
        and ``dice``, their mean (None when either is undefined), and ``base_center``: the dataset whose
        single-center model a ``cyclegan`` row scores or a ``finetune`` row started from (None: the
        grid's training center, and for ``train`` rows).

    Example:
        >>> from lgeseg.experiments.grid import cyclegan_cell, train_cell
        >>> row = case_row(train_cell(("center1",), "none", 0), "center2", "none", "c2_000",
        ...                {"blood_pool": 0.9, "myocardium": 0.7})
        >>> row["cell"], row["centers"], row["center"], round(row["dice"], 3)
        ('train_center1_none_s0', ('center1',), 'center2', 0.8)
        >>> pair = cyclegan_cell(train_cell(("center1",), "spatial_intensity", 0), "center2")
        >>> case_row(pair, "center1", "cyclegan", "c1_000", {"blood_pool": 0.9, "myocardium": 0.7})["base_center"]
        'center2'
    """
    values = [dice.get("blood_pool"), dice.get("myocardium")]
    mean = None if any(v is None for v in values) else sum(values) / 2  # type: ignore[operator, misc]
    return {"cell": cell.id, "kind": cell.kind, "seed": cell.seed, "centers": cell.centers,
            "augmentation": cell.augmentation, "subjects_per_center": cell.subjects_per_center,
            "trainable": cell.trainable, "amount": cell.amount, "center": center, "harmonization": harmonization,
            "case": case, "blood_pool": values[0], "myocardium": values[1], "dice": mean,
            "base_center": _base_center(cell, center)}


def _base_center(cell: Cell, center: str) -> str | None:
    if cell.kind == "finetune":
        return cell.pretrained_on
    if cell.kind == "cyclegan" and len(cell.centers) == 2:  # the model of the pair's other center
        return cell.centers[0] if center == cell.centers[1] else cell.centers[1]
    return None


def from_center(row: Row, center: str, train_center: str) -> bool:
    """True when a ``cyclegan`` or ``finetune`` row's model was trained on ``center`` (``base_center``;
    None stands for the grid's ``train_center``).

    Example:
        >>> from lgeseg.experiments.grid import finetune_cell, train_cell
        >>> cine = train_cell(("acdc_cine",), "spatial_intensity", 0)
        >>> row = case_row(finetune_cell(cine, "center2", "all", "1", pretrained_on="acdc_cine"), "center2", "none",
        ...                "c2_000", {"blood_pool": 0.9, "myocardium": 0.7})
        >>> from_center(row, "center1", "center1"), from_center(row, "acdc_cine", "center1")
        (False, True)
    """
    return (row.get("base_center") or train_center) == center


def per_seed(rows: Iterable[Row], value: str = "dice") -> dict[int, float]:
    """Mean of ``value`` over the rows of each seed (cases with an undefined value are left out).

    Example:
        >>> rows = [{"seed": 0, "dice": 0.7}, {"seed": 0, "dice": 0.8}, {"seed": 1, "dice": 0.9},
        ...         {"seed": 1, "dice": None}]
        >>> {seed: round(value, 3) for seed, value in per_seed(rows).items()}  # undefined Dice left out
        {0: 0.75, 1: 0.9}
    """
    by_seed: dict[int, list[float]] = {}
    for row in rows:
        if row[value] is not None:
            by_seed.setdefault(row["seed"], []).append(row[value])
    return {seed: sum(values) / len(values) for seed, values in sorted(by_seed.items())}


def mean_sd(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"mean", "sd", "n"}`` of per-seed values; ``sd`` is the sample SD, None with fewer than two seeds.

    Example:
        >>> stats = mean_sd([0.7, 0.8])
        >>> round(stats["mean"], 3), round(stats["sd"], 4), stats["n"]
        (0.75, 0.0707, 2)
        >>> mean_sd([0.7])  # one seed: no SD
        {'mean': 0.7, 'sd': None, 'n': 1}
    """
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def select(rows: Iterable[Row], **criteria: Any) -> list[Row]:
    """Rows whose fields equal every criterion (a callable criterion is a predicate on the field).

    Example:
        >>> rows = [{"seed": 0, "center": "center2", "dice": 0.7}, {"seed": 1, "center": "center2", "dice": 0.9}]
        >>> select(rows, seed=1), len(select(rows, center="center2", dice=lambda d: d > 0.5))
        ([{'seed': 1, 'center': 'center2', 'dice': 0.9}], 2)
    """
    def matches(row: Row) -> bool:
        return all(want(row[k]) if callable(want) else row[k] == want for k, want in criteria.items())

    return [row for row in rows if matches(row)]


def column_selectors(config: ExperimentsConfig, num_encoder_blocks: int) -> dict[str, Callable[[Row], bool]]:
    """Which rows make each Table 5 column (the training center's models and the unseen centers' tests).

    Example:
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"), experiments=(1,))
        >>> row = case_row(train_cell(("center1",), "none", 0), "center2", "none", "c2_000",  # no augmentation
        ...                {"blood_pool": 0.8, "myocardium": 0.6})
        >>> selectors = column_selectors(config, num_encoder_blocks=4)
        >>> list(selectors)[:3], selectors["no_augmentation"](row), selectors["spatial"](row)
        (['no_augmentation', 'spatial', 'spatial_intensity'], True, False)
    """
    home = config.train_center
    main = main_trainable(config, num_encoder_blocks)

    def single(augmentation: str, harmonization: str) -> Callable[[Row], bool]:
        return lambda r: (r["kind"] == "train" and r["centers"] == (home,) and r["subjects_per_center"] is None
                          and r["augmentation"] == augmentation and r["harmonization"] == harmonization)

    selectors = {_COLUMN_OF_AUGMENTATION.get(aug, aug): single(aug, "none")
                 for aug in experiment_1_augmentations(config)}
    selectors["histogram"] = lambda r: single("spatial_intensity", "histogram")(r) and r["center"] != home
    selectors["cyclegan"] = lambda r: r["kind"] == "cyclegan" and from_center(r, home, home)
    selectors["transfer"] = lambda r: (r["kind"] == "finetune" and r["trainable"] == main
                                       and r["amount"] == config.finetune_amount and from_center(r, home, home))
    selectors["multi_center"] = lambda r: (r["kind"] == "train" and r["centers"] == (home, r["center"])
                                           and r["augmentation"] == "spatial_intensity"
                                           and r["subjects_per_center"] == subjects_for(config, 2)
                                           and r["harmonization"] == "none")
    return selectors


def table_5(rows: Sequence[Row], config: ExperimentsConfig, num_encoder_blocks: int,
            value: str = "dice") -> dict[str, dict[str, Any]]:
    """``{column: {test center: {"mean", "sd", "n"}}}``: per-seed mean Dice over the center's test cases,
    then mean ± SD over seeds. Columns without rows are left out.

    ``value`` is the row field averaged: ``dice`` (the mean of blood pool and myocardium, the paper's
    Table 5), ``blood_pool`` or ``myocardium``.

    Example:
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"), experiments=(1,))
        >>> rows = [case_row(train_cell(("center1",), "none", seed), "center2", "none", "c2_000",  # two seeds
        ...                  {"blood_pool": dice, "myocardium": dice - 0.2}) for seed, dice in ((0, 0.8), (1, 0.9))]
        >>> table = table_5(rows, config, num_encoder_blocks=4)
        >>> list(table), format_cell(table["no_augmentation"]["center2"])  # mean ± SD over the two seeds
        (['no_augmentation'], '0.750 ± 0.071')
        >>> format_cell(table_5(rows, config, num_encoder_blocks=4, value="myocardium")["no_augmentation"]["center2"])
        '0.650 ± 0.071'
    """
    table: dict[str, dict[str, Any]] = {}
    for column, wanted in column_selectors(config, num_encoder_blocks).items():
        chosen = [row for row in rows if wanted(row)]
        for center in sorted({row["center"] for row in chosen}):
            values = list(per_seed((r for r in chosen if r["center"] == center), value).values())
            table.setdefault(column, {})[center] = mean_sd(values)
    return table


def format_cell(stats: dict[str, Any] | None) -> str:
    """``0.853 ± 0.021`` (SD over seeds), ``0.853`` with one seed, ``-`` without a value.

    Example:
        >>> format_cell(mean_sd([0.82, 0.86, 0.84])), format_cell(mean_sd([0.84])), format_cell(None)
        ('0.840 ± 0.020', '0.840', '-')
    """
    if not stats or stats["mean"] is None:
        return "-"
    return f"{stats['mean']:.3f}" if stats["sd"] is None else f"{stats['mean']:.3f} ± {stats['sd']:.3f}"


def format_table(table: dict[str, dict[str, Any]], train_center: str) -> str:
    """Markdown in the layout of the paper's Table 5: test centers x experiment columns.

    Cells hold the mean 3D Dice of blood pool and myocardium (± SD over seeds); ``-`` where the
    column does not apply (experiments 2-4 on the training center) or was not run.

    Example:
        >>> table = {"no_augmentation": {"center1": mean_sd([0.9, 0.92]), "center2": mean_sd([0.7, 0.8])}}
        >>> print(format_table(table, train_center="center1"))
        | test center | 1: no augmentation |
        | --- | --- |
        | center1 (training) | 0.910 ± 0.014 |
        | center2 | 0.750 ± 0.071 |
    """
    columns = list(table)
    centers = sorted({center for column in table.values() for center in column}, key=lambda c: (c != train_center, c))
    lines = ["| test center | " + " | ".join(column_header(c) for c in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for center in centers:
        label = f"{center} (training)" if center == train_center else center
        lines.append(f"| {label} | " + " | ".join(format_cell(table[c].get(center)) for c in columns) + " |")
    return "\n".join(lines)


def summarize(out_dir: Path, config: ExperimentsConfig, cells: Sequence[Cell], num_encoder_blocks: int,
              seconds: dict[str, float] | None = None) -> dict[str, Any]:
    """Collect the finished cells; write ``results.json``, ``rows.json`` and ``table.md``; return the results.

    Returns ``{"table5": {column: {center: {"mean", "sd", "n"}}}, "table5_by_structure": {"blood_pool": ...,
    "myocardium": ...} (the same table for one structure), "cells": {"finished", "missing"}, "seconds": {...},
    "config": {...}}``.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.cells import write_result
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> config = make_config("tiny", out_dir=Path(tmp.name), experiments=(1,))
        >>> cells = [train_cell(("center1",), "none", 0), train_cell(("center1",), "spatial", 0)]
        >>> cases = {"c2_000": {"blood_pool": 0.8, "myocardium": 0.6}}
        >>> score = {"center": "center2", "harmonization": "none", "cases": cases}
        >>> _ = write_result(tmp.name, cells[0], [score], seconds=5.0, device="cpu")  # one done
        >>> results = summarize(Path(tmp.name), config, cells, num_encoder_blocks=4)
        >>> results["cells"], sorted(p.name for p in Path(tmp.name).iterdir())
        ({'finished': 1, 'missing': ['train_center1_spatial_s0']}, ['cells', 'results.json', 'rows.json', 'table.md'])
        >>> (Path(tmp.name) / "table.md").read_text().splitlines()[-1]  # and says what is missing
        '1 of 2 cells have no result yet.'
        >>> tmp.cleanup()
    """
    rows, missing = collect(out_dir, cells)
    table = table_5(rows, config, num_encoder_blocks)
    cell_seconds = {}
    for cell in cells:
        path = cell_folder(out_dir, cell) / "result.json"
        if path.is_file():
            cell_seconds[cell.id] = load_json(path)["seconds"]
    by_structure = {s: table_5(rows, config, num_encoder_blocks, value=s) for s in ("blood_pool", "myocardium")}
    results = {"table5": table, "table5_by_structure": by_structure,
               "cells": {"finished": len(cells) - len(missing), "missing": missing},
               "seconds": {**(seconds or {}), "cells_total": math.fsum(cell_seconds.values())},
               "cell_seconds": cell_seconds, "config": config.to_dict()}
    save_json(results, Path(out_dir) / "results.json")
    save_json(rows, Path(out_dir) / "rows.json")
    note = f"\n\n{len(missing)} of {len(cells)} cells have no result yet." if missing else ""
    (Path(out_dir) / "table.md").write_text(format_table(table, config.train_center) + note + "\n")
    return results
