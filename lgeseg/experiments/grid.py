"""The paper's experiments as a grid of independent cells (the settings: ``experiments.config``, re-exported here).

A *cell* is one model to make (train from scratch, fine-tune, or train a CycleGAN) together with
the test sets it is scored on; it is an independent, resumable job whose result is one file
(``OUT/cells/<id>/result.json``). Cells come in two waves: models trained from scratch first, then
the cells that start from one of them (fine-tuning, CycleGAN harmonization of the base model).

Which cells the paper needs (training center T, the unseen centers X, every seed):

1. augmentation (Figure 6): T with ``none``, ``spatial``, ``spatial_intensity``, tested on every center
   (with ``every_training_center``: each center in turn is T);
2. harmonization (Figure 7): the ``spatial_intensity`` model of T on X, histogram-matched (scored by
   the model's own cell) or translated by a CycleGAN (one cell per pair of centers, both directions:
   the paper's Table 3; with ``every_training_center`` every center's model, so all 6 pairs of 4 centers);
3. transfer (Figures 8-10): that model fine-tuned on X, sweeping ``encoder:k``/``decoder:k`` and the
   amount of X's subjects, plus (when a sweep is set) the reference model trained on X itself; with
   ``pretrain_source``, also a model trained on that dataset (cine) and fine-tuned the same way
   (Figure 10's grey line);
4. multi-center (Figures 9, 11): T plus every combination of the other centers (1 to 4 centers),
   with and without augmentation, with ``subjects_for(config, k)`` subjects of each center of a
   k-center model (Table 4) or all subjects; the model without augmentation is also scored with
   histogram matching.

Example:
    >>> config = make_config("tiny", out_dir=Path("runs/tiny"), seeds=2)
    >>> cells = build_grid(config, ["center1", "center2"], num_encoder_blocks=4)
    >>> len(cells), cells[0].id, cells[-1].id
    (22, 'train_center1_none_s0', 'finetune_center2_all_100pct_s1')
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from lgeseg.core.records import JsonRecord
from lgeseg.experiments.config import AUGMENTATIONS as AUGMENTATIONS
from lgeseg.experiments.config import HARMONIZATIONS as HARMONIZATIONS
from lgeseg.experiments.config import PAPER_TABLE_4 as PAPER_TABLE_4
from lgeseg.experiments.config import SCALES as SCALES
from lgeseg.experiments.config import WINDOWS as WINDOWS
from lgeseg.experiments.config import ExperimentsConfig as ExperimentsConfig
from lgeseg.experiments.config import experiment_1_augmentations as experiment_1_augmentations
from lgeseg.experiments.config import make_config as make_config
from lgeseg.experiments.config import subjects_for as subjects_for


@dataclasses.dataclass(frozen=True)
class Cell(JsonRecord):
    """One job of the grid: a model to make and the test sets to score it on.

    Attributes:
        id: unique name, also the folder ``OUT/cells/<id>``.
        kind: ``train`` (from scratch), ``finetune`` (from ``base``'s model) or ``cyclegan`` (a GAN
            between ``centers[0]`` (source) and ``centers[1]`` (target), then ``base``'s model scored on
            the target through it and ``reverse_base``'s model on the source).
        seed: seed of weights, sampling, augmentation and picked subjects.
        centers: training centers (``train``), the new center (``finetune``) or the GAN's two centers
            (``cyclegan``; a grid written before pairs holds the target alone, the source being the
            training center).
        augmentation: augmentation preset of a ``train`` cell.
        subjects_per_center: subjects of each training center (None: all).
        base: id of the cell whose model this one starts from or harmonizes for.
        trainable: fine-tuned blocks (``encoder:K``, ``decoder:K``, ``all``).
        amount: subjects of the new center a fine-tuning uses (``"3"`` or ``"25%"``).
        scores: (test center, harmonization) pairs the model is scored on.
        reverse_base: ``cyclegan``: id of the cell whose model (trained on ``centers[1]``) is scored on
            ``centers[0]`` through the source-to-target generator (None: ``base``'s direction only).
        pretrained_on: ``finetune``: the dataset ``base`` was trained on when it is not the training
            center (cross-modality pretraining, Figure 10's grey line); None: the training center.
    """

    id: str
    kind: str
    seed: int
    centers: tuple[str, ...]
    augmentation: str = "spatial_intensity"
    subjects_per_center: int | None = None
    base: str | None = None
    trainable: str | None = None
    amount: str | None = None
    scores: tuple[tuple[str, str], ...] = ()
    reverse_base: str | None = None
    pretrained_on: str | None = None

    @property
    def wave(self) -> int:
        """1 for models trained from scratch, 2 for cells that need another cell's model."""
        return 1 if self.kind == "train" else 2

    @property
    def needs(self) -> tuple[str, ...]:
        """Ids of the cells whose models this one needs (none for a model trained from scratch)."""
        return tuple(c for c in (self.base, self.reverse_base) if c is not None)


def train_cell(centers: tuple[str, ...], augmentation: str, seed: int, subjects: int | None = None) -> Cell:
    """A from-scratch model on ``centers``; its id names centers, augmentation, subject count and seed.

    Example:
        >>> train_cell(("center1",), "spatial_intensity", seed=0).id
        'train_center1_spatial_intensity_s0'
        >>> cell = train_cell(("center1", "center2"), "none", seed=1, subjects=3)
        >>> cell.id, cell.kind, cell.wave
        ('train_center1+center2_none_n3_s1', 'train', 1)
    """
    count = f"_n{subjects}" if subjects else ""
    return Cell(f"train_{'+'.join(centers)}_{augmentation}{count}_s{seed}", "train", seed, centers, augmentation,
                subjects)


def finetune_cell(base: Cell, center: str, trainable: str, amount: str, pretrained_on: str | None = None) -> Cell:
    """``base``'s model fine-tuned on ``center`` (``trainable`` blocks, ``amount`` of its subjects).

    ``pretrained_on`` names ``base``'s dataset when it is not the training center (cross-modality
    pretraining); the id then ends in ``_from_<dataset>``.

    Example:
        >>> base = train_cell(("center1",), "spatial_intensity", seed=0)
        >>> cell = finetune_cell(base, "center2", "encoder:5", "10%")
        >>> cell.id, cell.base, cell.scores, cell.wave  # scored on the new center, after its base model
        ('finetune_center2_encoder5_10pct_s0', 'train_center1_spatial_intensity_s0', (('center2', 'none'),), 2)
        >>> cine = train_cell(("acdc_cine",), "spatial_intensity", seed=0)
        >>> finetune_cell(cine, "center2", "encoder:5", "1", pretrained_on="acdc_cine").id
        'finetune_center2_encoder5_1_from_acdc_cine_s0'
    """
    tag = f"{trainable.replace(':', '')}_{amount.replace('%', 'pct')}"
    source = f"_from_{pretrained_on}" if pretrained_on else ""
    return Cell(f"finetune_{center}_{tag}{source}_s{base.seed}", "finetune", base.seed, (center,), base=base.id,
                trainable=trainable, amount=amount, scores=((center, "none"),), pretrained_on=pretrained_on)


def cyclegan_cell(base: Cell, center: str, reverse: Cell | None = None) -> Cell:
    """A CycleGAN between ``base``'s training center (source) and ``center`` (target).

    ``base``'s model is scored on ``center`` through the target-to-source generator; ``reverse`` (a
    model trained on ``center``), when given, on the source center through the source-to-target one:
    one GAN serves both directions, as in the paper's Table 3.

    Example:
        >>> base = train_cell(("center1",), "spatial_intensity", seed=0)
        >>> cell = cyclegan_cell(base, "center3")
        >>> cell.id, cell.centers, cell.scores
        ('cyclegan_center1_center3_s0', ('center1', 'center3'), (('center3', 'cyclegan'),))
        >>> pair = cyclegan_cell(base, "center3", reverse=train_cell(("center3",), "spatial_intensity", seed=0))
        >>> pair.scores, pair.reverse_base  # center3's model scored on center1 through the other generator
        ((('center3', 'cyclegan'), ('center1', 'cyclegan')), 'train_center3_spatial_intensity_s0')
    """
    source = base.centers[0]
    scores = ((center, "cyclegan"),) + (((source, "cyclegan"),) if reverse is not None else ())
    return Cell(f"cyclegan_{source}_{center}_s{base.seed}", "cyclegan", base.seed, (source, center), base=base.id,
                scores=scores, reverse_base=None if reverse is None else reverse.id)


def gan_pair(cell: Cell, train_center: str) -> tuple[str, str]:
    """(source, target) centers of a ``cyclegan`` cell's GAN (a cell of an older grid names its target alone).

    Example:
        >>> cell = cyclegan_cell(train_cell(("center2",), "spatial_intensity", seed=0), "center4")
        >>> gan_pair(cell, "center1")
        ('center2', 'center4')
        >>> gan_pair(Cell("cyclegan_center1_center3_s0", "cyclegan", 0, ("center3",)), "center1")
        ('center1', 'center3')
    """
    if len(cell.centers) == 2:
        return cell.centers[0], cell.centers[1]
    return train_center, cell.centers[0]


def main_trainable(config: ExperimentsConfig, num_encoder_blocks: int) -> str:
    """The fine-tuned blocks of Table 5's transfer column: ``finetune_blocks`` or the paper's default.

    Example:
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> main_trainable(config, 5), main_trainable(config, 4)  # the paper's encoder:5 where the network has 5 blocks
        ('encoder:5', 'all')
        >>> main_trainable(make_config("tiny", out_dir=Path("runs/tiny"), finetune_blocks="decoder:2"), 5)
        'decoder:2'
    """
    # deferred: the grid is built by the launcher and --summary-only, which start without torch
    from lgeseg.training.finetune import default_trainable

    return config.finetune_blocks or default_trainable(num_encoder_blocks)


def block_sweep(config: ExperimentsConfig, num_encoder_blocks: int) -> list[str]:
    """``encoder:k`` and ``decoder:k`` for the configured k that the network has (Figure 8).

    Example:
        >>> block_sweep(make_config("quick", out_dir=Path("runs/quick")), num_encoder_blocks=4)  # k = 1, 3 (5 > 4)
        ['encoder:1', 'encoder:3', 'decoder:1', 'decoder:3']
    """
    encoder = [f"encoder:{k}" for k in config.block_counts if k <= num_encoder_blocks]
    decoder = [f"decoder:{k}" for k in config.block_counts if k <= num_encoder_blocks - 1]
    return encoder + decoder


class _Grid:
    """Cells by id, merging the scores of cells that two experiments both need."""

    def __init__(self) -> None:
        self.cells: dict[str, Cell] = {}

    def add(self, cell: Cell, scores: list[tuple[str, str]] | None = None) -> Cell:
        known = self.cells.get(cell.id, cell)
        merged = tuple(dict.fromkeys((*known.scores, *cell.scores, *(scores or []))))
        self.cells[cell.id] = dataclasses.replace(known, scores=merged)
        return self.cells[cell.id]


def build_grid(config: ExperimentsConfig, centers: list[str], num_encoder_blocks: int) -> list[Cell]:
    """Every cell the selected experiments need, for every seed; wave-1 cells first.

    Args:
        config: the settings.
        centers: every center's name; ``config.train_center`` must be one of them.
        num_encoder_blocks: encoder blocks of the planned network (bounds the block sweep).

    Example:
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"), experiments=(1,))  # augmentation only, one seed
        >>> cells = build_grid(config, ["center1", "center2"], num_encoder_blocks=4)
        >>> [cell.id for cell in cells]
        ['train_center1_none_s0', 'train_center1_spatial_s0', 'train_center1_spatial_intensity_s0']
        >>> cells[0].scores  # every model is tested on every center
        (('center1', 'none'), ('center2', 'none'))
    """
    if config.train_center not in centers:
        raise ValueError(f"train_center {config.train_center!r}: no such center (found {', '.join(centers)})")
    if config.pretrain_source is not None and Path(config.pretrain_source).name in centers:
        raise ValueError(f"pretrain_source {config.pretrain_source}: its folder name must differ from the centers' "
                         f"({', '.join(centers)}), found {Path(config.pretrain_source).name!r}")
    grid = _Grid()
    for seed in range(config.seeds):
        _add_seed(grid, config, centers, num_encoder_blocks, seed)
    return sorted(grid.cells.values(), key=lambda cell: cell.wave)


def _add_seed(grid: _Grid, config: ExperimentsConfig, centers: list[str], blocks: int, seed: int) -> None:
    home = config.train_center
    unseen = [c for c in centers if c != home]
    on_all = [(c, "none") for c in centers]
    experiments = set(config.experiments)
    trained_on = [home, *unseen] if config.every_training_center else [home]
    if 1 in experiments:
        for center in trained_on:
            for augmentation in experiment_1_augmentations(config):
                grid.add(train_cell((center,), augmentation, seed), on_all)
    base = grid.add(train_cell((home,), "spatial_intensity", seed), on_all) if experiments & {2, 3} else None
    if base is not None and 2 in experiments:
        _add_harmonization(grid, config, [home, *unseen], trained_on, seed)
    if base is not None and 3 in experiments:
        _add_transfer(grid, config, base, unseen, blocks)
    if 4 in experiments:
        for size in config.combination_sizes:
            for others in itertools.combinations(unseen, size - 1):
                for augmentation in ("none", "spatial_intensity"):
                    cell = train_cell((home, *others), augmentation, seed, subjects_for(config, size))
                    harmonized = [(c, "histogram") for c in centers] if augmentation == "none" else []
                    grid.add(cell, on_all + harmonized)


def _add_harmonization(grid: _Grid, config: ExperimentsConfig, centers: list[str], trained_on: list[str],
                       seed: int) -> None:
    """Experiment 2 for the ``spatial_intensity`` model of every center in ``trained_on``: histogram matching
    on the other centers, and one CycleGAN per pair of centers (source: the first in ``centers``' order)
    that scores the model of each of its centers that is trained on the other center."""
    models = {c: grid.add(train_cell((c,), "spatial_intensity", seed), [(t, "none") for t in centers])
              for c in trained_on}
    if "histogram" in config.harmonization:
        for center, model in models.items():
            grid.add(model, [(c, "histogram") for c in centers if c != center])
    if "cyclegan" in config.harmonization:
        for i, source in enumerate(centers):
            for target in centers[i + 1:]:
                if source in models:
                    grid.add(cyclegan_cell(models[source], target, models.get(target)))


def _add_transfer(grid: _Grid, config: ExperimentsConfig, base: Cell, unseen: list[str], blocks: int) -> None:
    main = main_trainable(config, blocks)
    for center in unseen:
        if config.block_counts or config.amounts:  # Figures 8 and 10's "trained on the target" line
            grid.add(train_cell((center,), "spatial_intensity", base.seed), [(center, "none")])
        grid.add(finetune_cell(base, center, main, config.finetune_amount))
        for trainable in block_sweep(config, blocks):
            grid.add(finetune_cell(base, center, trainable, config.finetune_amount))
        for amount in config.amounts:
            grid.add(finetune_cell(base, center, main, amount))
    if config.pretrain_source is not None:  # Figure 10's grey line: pretrained on another modality (cine)
        source = Path(config.pretrain_source).name
        pretrained = grid.add(train_cell((source,), "spatial_intensity", base.seed), [(c, "none") for c in unseen])
        for center in unseen:
            for amount in dict.fromkeys((config.finetune_amount, *config.amounts)):
                grid.add(finetune_cell(pretrained, center, main, amount, pretrained_on=source))


def cell_folder(out_dir: Path, cell: Cell | str) -> Path:
    """``OUT/cells/<id>``: the cell's model, predictions, metrics and ``result.json``.

    Example:
        >>> cell_folder(Path("runs/tiny"), train_cell(("center1",), "none", seed=0)).as_posix()
        'runs/tiny/cells/train_center1_none_s0'
    """
    return Path(out_dir) / "cells" / (cell if isinstance(cell, str) else cell.id)
