"""What a grid will run, in words: ``lgeseg_experiments --dry-run``.

The description is built from the settings alone (no data is made, nothing is trained or written):
the centers, the training budget, the inference settings, Table 4's subject counts per center
combination, the CycleGAN pairs of Table 3 and the cells per kind.

Example:
    >>> from lgeseg.experiments.grid import make_config
    >>> config = make_config("paper", out_dir=Path("runs/paper"))
    >>> text = describe_grid(config, planned_centers(config), planned_blocks(config, "cuda")[0])
    >>> print("\\n".join(line for line in text.splitlines() if line.startswith("| 4 ")))
    | 4 | center1+center2+center3+center4 | 14 (11 + 3) | 56 |
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from pathlib import Path

from lgeseg.core.records import PLANS_FILE, Plan, load_json
from lgeseg.experiments.grid import (
    ExperimentsConfig,
    build_grid,
    experiment_1_augmentations,
    main_trainable,
    subjects_for,
)
from lgeseg.planning.planner_presets import get_preset
from lgeseg.planning.topology import plan_topology, round_patch_axis


def planned_centers(config: ExperimentsConfig) -> list[str]:
    """The grid's centers, training center first, as ``prepare`` will find them (no data made).

    Synthetic runs: ``center<k>`` of ``synthetic_centers``; real data: the raw datasets of ``raw_dir``.

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> planned_centers(make_config("quick", out_dir=Path("runs/q"), train_center="center3"))
        ['center3', 'center1', 'center2', 'center4']
    """
    if config.raw_dir is None:
        names = [f"center{k}" for k in config.synthetic_centers]
    else:
        raw = Path(config.raw_dir)
        if not raw.is_dir():
            raise FileNotFoundError(f"raw_dir {raw}: expected a folder of raw datasets, found none")
        names = sorted(p.name for p in raw.iterdir() if (p / "dataset.json").is_file())
    if config.train_center not in names:
        raise ValueError(f"train_center {config.train_center!r}: no such center (found {', '.join(names)})")
    return [config.train_center] + [n for n in names if n != config.train_center]


def planned_blocks(config: ExperimentsConfig, device: str) -> tuple[int, str]:
    """(encoder blocks of the network the grid trains, where the number comes from).

    The plan of an earlier run (``OUT/preprocessed/<training center>/plans.json``) when there is one;
    else the preset's: its fixed patch (``paper``: 256 x 256, 6 blocks) or, for a patch the data
    decides, its largest one (the data may give fewer blocks).

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> planned_blocks(make_config("paper", out_dir=Path("runs/none")), "cuda")
        (6, "preset 'paper': fixed 256 x 256 patch")
        >>> planned_blocks(make_config("quick", out_dir=Path("runs/none")), "cpu")
        (5, "preset 'cpu': at most, for its largest patch (128 x 128); the data decides")
    """
    plans = Path(config.out_dir) / "preprocessed" / config.train_center / PLANS_FILE
    if plans.is_file():
        return Plan.from_dict(load_json(plans)).topology.num_stages, f"the plan in {plans}"
    name = config.preset or ("cpu" if device == "cpu" else "default")
    preset = get_preset(name)
    if preset.fixed_patch is not None:
        patch = (int(preset.fixed_patch[0]), int(preset.fixed_patch[1]))
        source = f"preset {name!r}: fixed {patch[0]} x {patch[1]} patch"
    else:
        side = round_patch_axis(preset.max_patch)
        patch = (side, side)
        source = f"preset {name!r}: at most, for its largest patch ({side} x {side}); the data decides"
    topology = plan_topology(patch, 1, 3, preset.base_features, preset.max_features)
    return topology.num_stages, source


def split_counts(subjects: int, num_folds: int = 5) -> tuple[int, int]:
    """(training, validation) subjects of a center after lgeseg's split by subject (fold 0 of ``num_folds``).

    Example:
        >>> [split_counts(n) for n in (52, 26, 17, 14)]  # the paper's Table 4: 42+10, 21+5, 14+3, 11+3
        [(41, 11), (20, 6), (13, 4), (11, 3)]
    """
    validation = math.ceil(subjects / num_folds) if subjects >= 2 else 0
    return subjects - validation, validation


def _amount(amount: str) -> str:
    return f"{amount} of the subjects" if amount.endswith("%") else f"{amount} subject(s)"


def _budget(config: ExperimentsConfig, blocks: int) -> list[str]:
    iterations = ("one pass over the training slices (the recipe's epoch)" if config.iterations_per_epoch is None
                  else f"{config.iterations_per_epoch} iterations")
    limit = f", at most {config.train_minutes:g} minutes" if config.train_minutes else ""
    sweeps = (f"; Figure 8 sweep k = {', '.join(map(str, config.block_counts)) or 'none'}, "
              f"Figure 10 amounts {', '.join(config.amounts) or 'none'}")
    preset = config.preset or "cpu on the CPU, else default"
    return [
        f"training: recipe {config.recipe}, preset {preset}, {config.epochs} epochs x {iterations} per model{limit}",
        f"fine-tuning: {main_trainable(config, blocks)} on {_amount(config.finetune_amount)} of the new center, "
        f"{config.finetune_epochs} epochs x {iterations}{sweeps}",
        f"CycleGAN: {config.gan_epochs} epochs x {config.gan_iterations} iterations, {config.gan_patch} px patches, "
        f"generator {config.gan_features} features / {config.gan_blocks} residual blocks, "
        f"discriminator {config.gan_features} features",
        f"inference: window {config.window}, mirroring {'on' if config.mirroring else 'off'}, "
        f"postprocess {config.postprocess or 'chosen per model on its validation cases'}",
    ]


def _table_4(config: ExperimentsConfig, centers: list[str]) -> list[str]:
    lines = ["Table 4 (experiment 4): subjects of each center (training + validation) per number of centers",
             "", "| centers | models (with and without augmentation) | subjects per center | total |",
             "| --- | --- | --- | --- |"]
    for size in sorted(s for s in config.combination_sizes if s <= len(centers)):
        count = subjects_for(config, size)
        combos = [[centers[0], *others] for others in itertools.combinations(centers[1:], size - 1)]
        names = ", ".join("+".join(c) for c in combos[:3]) + (f" (+{len(combos) - 3} more)" if len(combos) > 3 else "")
        if count is None:
            lines.append(f"| {size} | {names} | all (balanced sampling) | all |")
        else:
            train, validation = split_counts(count)
            lines.append(f"| {size} | {names} | {count} ({train} + {validation}) | {count * size} |")
    return lines


def describe_grid(config: ExperimentsConfig, centers: list[str], num_encoder_blocks: int,
                  blocks_source: str = "") -> str:
    """The grid ``config`` makes for ``centers`` (training center first), in words and tables.

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> config = make_config("quick", out_dir=Path("runs/q"), experiments=(2,), harmonization=("cyclegan",))
        >>> text = describe_grid(config, ["center1", "center2", "center3"], 5)
        >>> [line for line in text.splitlines() if "<->" in line]
        ['- center1 <-> center2: center1 model on center2', '- center1 <-> center3: center1 model on center3']
    """
    cells = build_grid(config, centers, num_encoder_blocks)
    data = (f"synthetic centers, {config.cases_per_center} labelled (training + validation) and "
            f"{config.test_cases_per_center} test subjects each" if config.raw_dir is None
            else f"real data: {config.raw_dir} (training), {config.test_dir} (test)")
    lines = [f"lgeseg_experiments --scale {config.scale}: {len(cells)} cells, {config.seeds} seed(s), experiments "
             f"{' '.join(map(str, config.experiments))} (dry run: nothing is made or written)", "",
             f"centers: {centers[0]} (training), {', '.join(centers[1:]) or 'no other'}; {data}",
             f"network: {num_encoder_blocks} encoder blocks" + (f" ({blocks_source})" if blocks_source else "")]
    lines += _budget(config, num_encoder_blocks)
    if 1 in config.experiments:
        trained = centers if config.every_training_center else centers[:1]
        lines.append(f"experiment 1: trained on {', '.join(trained)} with "
                     f"{', '.join(experiment_1_augmentations(config))}")
    if 3 in config.experiments and config.pretrain_source is not None:
        lines.append(f"experiment 3: also pretrained on {Path(config.pretrain_source).name} ({config.pretrain_source}),"
                     f" then fine-tuned on {', '.join(centers[1:])} (Figure 10's grey line)")
    if 4 in config.experiments:
        lines += [""] + _table_4(config, centers)
    gans = [c for c in cells if c.kind == "cyclegan" and c.seed == 0]
    if gans:
        lines += ["", f"CycleGAN pairs (Table 3): {len(gans)}, one GAN per pair (both generators kept), scoring"]
        for cell in gans:
            source, target = cell.centers
            uses = [f"{source} model on {target}"] + ([f"{target} model on {source}"] if cell.reverse_base else [])
            lines.append(f"- {source} <-> {target}: {', '.join(uses)}")
    kinds = Counter(cell.kind for cell in cells if cell.seed == 0)
    lines += ["", f"cells per seed: {sum(kinds.values())} ({kinds['train']} trained from scratch, "
                  f"{kinds['finetune']} fine-tunings, {kinds['cyclegan']} CycleGANs); {len(cells)} for "
                  f"{config.seeds} seed(s)"]
    return "\n".join(lines)


def dry_run(config: ExperimentsConfig) -> str:
    """What ``run_experiments(config)`` would run, in words: ``describe_grid`` for the planned centers and network.

    Makes and writes nothing (``lgeseg_experiments --dry-run``).

    Example:
        >>> from lgeseg.experiments.grid import make_config
        >>> text = dry_run(make_config("medium", out_dir=Path("runs/none"), device="cpu"))
        >>> [line for line in text.splitlines() if line.startswith("training:")]
        ['training: recipe default, preset cpu, 20 epochs x 50 iterations per model']
    """
    device = config.device
    if device is None:
        from lgeseg.core.device import resolve_device  # deferred: torch, only to know whether a GPU is there

        device = str(resolve_device(None))
    blocks, source = planned_blocks(config, device)
    preset = config.preset or ("cpu" if device == "cpu" else "default")  # what prepare() will choose
    return describe_grid(dataclasses.replace(config, preset=preset), planned_centers(config), blocks, source)
