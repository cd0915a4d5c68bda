"""The settings of ``lgeseg_experiments``: ``ExperimentsConfig``, the scales and ``make_config``.

``grid`` builds the cells from these settings (and re-exports them); docs/experiments.md describes
every setting and scale, docs/paper.md compares the ``paper`` scale with the paper.

Example:
    >>> config = make_config("paper", out_dir=Path("runs/paper"), seeds=5)
    >>> config.recipe, config.window, [subjects_for(config, k) for k in (1, 2, 3, 4)]
    ('paper', 'sliding', [52, 26, 17, 14])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lgeseg.augmentation.presets import list_presets
from lgeseg.core.records import JsonRecord

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


def experiment_1_augmentations(config: ExperimentsConfig) -> tuple[str, ...]:
    """The augmentation presets of experiment 1: the paper's three, then ``config.extra_augmentations``.

    Example:
        >>> experiment_1_augmentations(make_config("quick", out_dir=Path("runs/q"), extra_augmentations=("lge_dg",)))
        ('none', 'spatial', 'spatial_intensity', 'lge_dg')
    """
    return (*AUGMENTATIONS, *config.extra_augmentations)
