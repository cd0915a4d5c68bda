"""The paper's experiments as a grid of independent cells, and the settings that shape it.

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
from typing import Any

from lgeseg.augmentation.presets import list_presets
from lgeseg.records import JsonRecord

#: Augmentation presets of experiment 1, in the paper's order.
AUGMENTATIONS = ("none", "spatial", "spatial_intensity")
#: Test-time harmonizations a score can use.
HARMONIZATIONS = ("none", "histogram", "cyclegan")
#: Inference windows of the scoring predictions (``inference.predictor.WINDOWS``; kept here so that the
#: grid is built without torch).
WINDOWS = ("roi", "sliding", "slice")
#: The paper's Table 4: subjects of each center (training + validation) in a model of 1, 2, 3, 4
#: centers, 42+10, 21+5, 14+3 and 11+3 in the paper, so the total stays about 52.
PAPER_TABLE_4 = (52, 26, 17, 14)


@dataclasses.dataclass(frozen=True)
class ExperimentsConfig(JsonRecord):
    """Settings of ``lgeseg_experiments`` (the ``quick`` scale's values are the defaults).

    Attributes:
        out_dir: work folder (data, preprocessed data, cells, results, figures).
        experiments: which of 1-4 to run (2 and 3 build on the ``spatial_intensity`` model of 1).
        scale: ``tiny``, ``quick`` or ``paper`` (see ``SCALES``), recorded for the reader.
        seeds: independent runs of every model (seeds 0 .. seeds-1); tables give mean ± SD over them.
        train_center: dataset folder name of the training center (``center1`` for the synthetic data).
        raw_dir / test_dir: one raw dataset per center (training / test cases), or None for both:
            synthetic centers are generated.
        synthetic_centers: which synthetic centers (1-4) to generate.
        cases_per_center / test_cases_per_center: synthetic subjects per center (training / test).
        in_plane_size: square in-plane matrix of the synthetic cases (None: each center's own).
        data_seed: seed of the synthetic data (test cases use data_seed + 1).
        preset: planner preset (None: ``cpu`` on the CPU, else ``default``).
        recipe: training recipe (``default``, ``paper``, ``nnunet``).
        epochs / iterations_per_epoch / train_minutes: length of each training (None iterations: the
            recipe's; the time budget in minutes ends a training early when set).
        every_training_center: experiment 1 trains on every center in turn (Figure 6 in full).
        extra_augmentations: augmentation presets trained in experiment 1 besides the paper's three, each
            its own Table 5 column ``1: <preset>`` (e.g. ``lge_dg``, lgeseg's default, beside the paper's).
        combination_sizes: numbers of centers (1-4) of the multi-center models of experiment 4.
        subjects_per_center: subjects of each center in every multi-center model (None: ``subjects_by_size``).
        subjects_by_size: subjects of each center in a model of 1, 2, ... centers (the paper's Table 4,
            ``PAPER_TABLE_4``: the total held about constant); empty: all subjects, balanced sampling.
            ``subjects_per_center`` wins when both are set (see ``subjects_for``).
        finetune_blocks: trainable blocks of the transfer models of Table 5 and Figures 9-10
            (None: ``encoder:5`` when the network has five encoder blocks, else ``all``).
        finetune_amount: subjects of the new center they train on: ``"3"`` (subjects) or ``"10%"``.
        block_counts: k of the ``encoder:k`` / ``decoder:k`` sweep of Figure 8 (empty: no sweep; k
            beyond the network's blocks is skipped).
        amounts: amounts of the sweep of Figure 10 (empty: no sweep).
        finetune_epochs: epochs of every fine-tuning.
        pretrain_source: a raw dataset (e.g. cine MRI) to pretrain on for experiment 3's cross-modality
            transfer (Figure 10's grey line): a model trained on it, then fine-tuned on every unseen center
            like the training center's model (None: not run). Its folder name must differ from the centers'.
        harmonization: methods of experiment 2 (``histogram``, ``cyclegan``).
        gan_epochs / gan_iterations / gan_patch: CycleGAN training length and patch (voxels).
        gan_features / gan_blocks: CycleGAN size: features of the generator's first layer and of the
            discriminator's, residual blocks of the generator (Zhu et al. at 256 x 256: 64 and 9).
        window: inference window of every scoring prediction (``roi``, ``sliding``, ``slice``).
        mirroring: flip test-time augmentation when predicting.
        postprocess: ``lcc`` (the paper: always the largest component), ``lcc_per_label``, ``none``,
            or None for each model's choice made on its validation cases.
        device: torch device, None for the best available.
    """

    out_dir: Path
    experiments: tuple[int, ...] = (1, 2, 3, 4)
    scale: str = "quick"
    seeds: int = 1
    train_center: str = "center1"
    raw_dir: Path | None = None
    test_dir: Path | None = None
    synthetic_centers: tuple[int, ...] = (1, 2, 3, 4)
    cases_per_center: int = 12
    test_cases_per_center: int = 5
    in_plane_size: int | None = None
    data_seed: int = 0
    preset: str | None = None
    recipe: str = "default"
    epochs: int = 20
    iterations_per_epoch: int | None = 25
    train_minutes: float | None = None
    every_training_center: bool = False
    extra_augmentations: tuple[str, ...] = ()
    combination_sizes: tuple[int, ...] = (1, 2, 3, 4)
    subjects_per_center: int | None = None
    subjects_by_size: tuple[int, ...] = ()
    finetune_blocks: str | None = None
    finetune_amount: str = "3"
    block_counts: tuple[int, ...] = (1, 3, 5)
    amounts: tuple[str, ...] = ("1", "25%", "100%")
    finetune_epochs: int = 3
    pretrain_source: Path | None = None
    harmonization: tuple[str, ...] = ("histogram", "cyclegan")
    gan_epochs: int = 5
    gan_iterations: int = 50
    gan_patch: int = 128
    gan_features: int = 16
    gan_blocks: int = 4
    window: str = "roi"
    mirroring: bool = False
    postprocess: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("lgeseg_experiments: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; paths become strings."""
        data = super().to_dict()
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentsConfig:
        """Rebuild from ``to_dict``'s output (path fields become ``Path``)."""
        paths = {k: Path(data[k]) for k in _PATH_FIELDS if data.get(k) is not None}
        return super().from_dict({**data, **paths})  # type: ignore[misc]


_PATH_FIELDS = ("out_dir", "raw_dir", "test_dir", "pretrain_source")


def _problems(config: ExperimentsConfig) -> list[str]:
    amounts = (config.finetune_amount, *config.amounts)
    checks = [
        (bool(config.experiments) and set(config.experiments) <= {1, 2, 3, 4},
         f"experiments: expected a selection of 1, 2, 3, 4, found {sorted(config.experiments)}"),
        (config.seeds >= 1, f"seeds must be >= 1, found {config.seeds}"),
        ((config.raw_dir is None) == (config.test_dir is None),
         "raw_dir and test_dir: give both (real data) or neither (synthetic data)"),
        (set(config.harmonization) <= {"histogram", "cyclegan"},
         f"harmonization: expected 'histogram' and/or 'cyclegan', found {sorted(config.harmonization)}"),
        (set(config.extra_augmentations) <= set(list_presets()) - set(AUGMENTATIONS),
         f"extra_augmentations: expected presets other than {', '.join(AUGMENTATIONS)} among "
         f"{', '.join(list_presets())}, found {list(config.extra_augmentations)}"),
        (set(config.combination_sizes) <= {1, 2, 3, 4},
         f"combination_sizes: expected numbers of centers 1-4, found {sorted(config.combination_sizes)}"),
        (all(_valid_amount(a) for a in amounts), f"amounts: expected subjects ('3') or a share ('25%'), "
                                                 f"found {list(amounts)}"),
        (config.postprocess in (None, "lcc", "lcc_per_label", "none"),
         f"postprocess: expected lcc, lcc_per_label or none, found {config.postprocess!r}"),
        (config.window in WINDOWS, f"window: expected one of {', '.join(WINDOWS)}, found {config.window!r}"),
        (not config.subjects_by_size or (len(config.subjects_by_size) >= max(config.combination_sizes, default=1)
                                         and len(config.subjects_by_size) <= 4
                                         and all(n >= 1 for n in config.subjects_by_size)),
         f"subjects_by_size: expected one count >= 1 per number of centers 1 .. "
         f"{max(config.combination_sizes, default=1)} (at most 4), found {list(config.subjects_by_size)}"),
        (config.subjects_per_center is None or config.subjects_per_center >= 1,
         f"subjects_per_center: expected >= 1, found {config.subjects_per_center}"),
        (config.gan_features >= 1 and config.gan_blocks >= 1,
         f"gan_features / gan_blocks: expected >= 1, found {config.gan_features} / {config.gan_blocks}"),
    ]
    return [message for ok, message in checks if not ok]


def _valid_amount(amount: str) -> bool:
    text = amount[:-1] if amount.endswith("%") else amount
    return text.isdigit() and int(text) >= 1 and (not amount.endswith("%") or int(text) <= 100)


#: Overrides of ``ExperimentsConfig`` per scale. ``tiny`` exercises every cell in minutes on a CPU
#: (no meaningful Dice); ``quick`` is the default (sized for 2 CPU cores: 500 iterations per model);
#: ``medium`` gives every model 1000 iterations (20 x 50, the budget at which real-LGE models converged in
#: docs/RESULTS.md), fine-tunings and CycleGANs twice the ``quick`` length; ``paper`` is the paper's
#: recipe, preset, Table 4 design and CycleGAN pairs as written (docs/paper.md lists what it cannot say).
SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"synthetic_centers": (1, 2), "cases_per_center": 4, "test_cases_per_center": 2, "in_plane_size": 48,
             "epochs": 1, "iterations_per_epoch": 2, "finetune_amount": "1", "block_counts": (1,),
             "amounts": ("1", "100%"), "finetune_epochs": 1, "gan_epochs": 1, "gan_iterations": 2, "gan_patch": 32},
    "quick": {},
    "medium": {"epochs": 20, "iterations_per_epoch": 50, "finetune_epochs": 3, "gan_epochs": 10,
               "gan_iterations": 50},
    "paper": {"preset": "paper", "recipe": "paper", "epochs": 250, "iterations_per_epoch": None,
              "cases_per_center": PAPER_TABLE_4[0], "test_cases_per_center": 15, "finetune_amount": "10%",
              "every_training_center": True, "subjects_by_size": PAPER_TABLE_4,
              "block_counts": (1, 2, 3, 4, 5, 6), "amounts": ("1", "10%", "25%", "50%", "100%"),
              "finetune_epochs": 50, "gan_epochs": 20, "gan_iterations": 100, "gan_patch": 256,
              "gan_features": 64, "gan_blocks": 9, "window": "sliding", "postprocess": "lcc"},
}


def make_config(scale: str = "quick", **overrides: Any) -> ExperimentsConfig:
    """The scale's settings with ``overrides`` on top (None values are ignored); needs ``out_dir``.

    Raises ``ValueError`` naming the known scales, or the setting that is invalid.

    Example:
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"), seeds=2, epochs=None)  # None: the scale's value
        >>> config.scale, config.seeds, config.epochs, config.in_plane_size
        ('tiny', 2, 1, 48)
        >>> make_config("huge", out_dir=Path("runs/huge"))
        Traceback (most recent call last):
        ValueError: unknown scale 'huge'; expected one of tiny, quick, medium, paper
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    values = {**SCALES[scale], **{k: v for k, v in overrides.items() if v is not None}, "scale": scale}
    return ExperimentsConfig(**values)


def subjects_for(config: ExperimentsConfig, size: int) -> int | None:
    """Subjects of each center in a multi-center model of ``size`` centers (None: all, balanced sampling).

    ``subjects_per_center`` when set (the same count for every model), else ``subjects_by_size[size - 1]``
    (the paper's Table 4: 52, 26, 17, 14 subjects of each center, training + validation), else None.

    Example:
        >>> paper = make_config("paper", out_dir=Path("runs/paper"))
        >>> [subjects_for(paper, k) for k in (1, 2, 3, 4)]  # the total held at about 52
        [52, 26, 17, 14]
        >>> subjects_for(make_config("paper", out_dir=Path("runs/paper"), subjects_per_center=13), 4)
        13
        >>> subjects_for(make_config("quick", out_dir=Path("runs/quick")), 2) is None  # all subjects
        True
    """
    if config.subjects_per_center is not None:
        return config.subjects_per_center
    if size <= len(config.subjects_by_size):
        return config.subjects_by_size[size - 1]
    return None


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


def experiment_1_augmentations(config: ExperimentsConfig) -> tuple[str, ...]:
    """The augmentation presets of experiment 1: the paper's three, then ``config.extra_augmentations``.

    Example:
        >>> experiment_1_augmentations(make_config("quick", out_dir=Path("runs/q"), extra_augmentations=("lge_dg",)))
        ('none', 'spatial', 'spatial_intensity', 'lge_dg')
    """
    return (*AUGMENTATIONS, *config.extra_augmentations)


def cell_folder(out_dir: Path, cell: Cell | str) -> Path:
    """``OUT/cells/<id>``: the cell's model, predictions, metrics and ``result.json``.

    Example:
        >>> cell_folder(Path("runs/tiny"), train_cell(("center1",), "none", seed=0)).as_posix()
        'runs/tiny/cells/train_center1_none_s0'
    """
    return Path(out_dir) / "cells" / (cell if isinstance(cell, str) else cell.id)
