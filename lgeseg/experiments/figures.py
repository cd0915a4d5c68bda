"""Figures 6-12 of the paper from the summary's rows (PNG, matplotlib), into ``OUT/figures/``.

Each figure uses only the rows it needs and is skipped (with a log line) when the experiments that
make those rows were not run. Values are mean 3D Dice of blood pool and myocardium; shaded bands
and error bars are the standard deviation over seeds (absent with one seed).

Usage::

    written = render_figures(rows, config, workspace.test, num_encoder_blocks, Path("runs/x"))
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lgeseg.experiments.grid import (  # noqa: E402
    ExperimentsConfig,
    experiment_1_augmentations,
    main_trainable,
    subjects_for,
)
from lgeseg.experiments.summary import (  # noqa: E402
    Row,
    column_header,
    column_selectors,
    from_center,
    mean_sd,
    per_seed,
    select,
)
from lgeseg.files import io  # noqa: E402

logger = logging.getLogger(__name__)

_AUGMENTATION_COLORS = {"none": "tab:blue", "spatial": "tab:orange", "spatial_intensity": "tab:green"}
_LABEL_COLORS = {1: (0.9, 0.2, 0.2), 2: (0.2, 0.8, 0.3)}


def _stats(rows: Sequence[Row]) -> tuple[float, float]:
    """(mean, SD) over seeds of the per-seed mean Dice; SD 0 with one seed, NaN without rows."""
    stats = mean_sd(list(per_seed(rows).values()))
    if stats["mean"] is None:
        return float("nan"), float("nan")
    return float(stats["mean"]), float(stats["sd"] or 0.0)


def _per_case(rows: Sequence[Row]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cases (sorted), and per case the mean and SD over seeds of its Dice."""
    cases = sorted({row["case"] for row in rows})
    means, sds = [], []
    for case in cases:
        values = [row["dice"] for row in rows if row["case"] == case and row["dice"] is not None]
        means.append(np.mean(values) if values else np.nan)
        sds.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
    return cases, np.array(means), np.array(sds)


def _panels(count: int, width: float = 3.6, height: float = 3.0, rows: int = 1) -> tuple[Any, np.ndarray]:
    figure, axes = plt.subplots(rows, count, figsize=(width * count, height * rows), squeeze=False)
    return figure, axes


def _save(figure: Any, path: Path, title: str) -> Path:
    figure.suptitle(textwrap.fill(title, width=max(30, int(figure.get_figwidth() * 11))), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _subject_lines(ax: Any, series: list[tuple[str, str, Sequence[Row]]], title: str) -> None:
    """One line per (label, color, rows) over the test subjects, with a ±SD band."""
    for label, color, rows in series:
        if not rows:
            continue
        cases, means, sds = _per_case(rows)
        x = np.arange(1, len(cases) + 1)
        ax.plot(x, means, "o-", color=color, label=label, markersize=3)
        ax.fill_between(x, means - sds, means + sds, color=color, alpha=0.15)
    ax.set(title=title, xlabel="test subject", ylabel="Dice", ylim=(0, 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)


def figure_6(rows: Sequence[Row], config: ExperimentsConfig, path: Path) -> Path | None:
    """Per-subject Dice of single-center models with no, spatial, and spatial + intensity augmentation.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cells = [train_cell(("center1",), augmentation, 0) for augmentation in experiment_1_augmentations(config)]
        >>> rows = scored_rows(cells, ("center1", "center2"), cases=2)
        >>> figure_6(rows, config, Path(tmp.name) / "figure_6.png").name
        'figure_6.png'
        >>> figure_6([], config, Path(tmp.name) / "no.png") is None  # no rows of experiment 1: skipped
        True
        >>> tmp.cleanup()
    """
    single = select(rows, kind="train", subjects_per_center=None, harmonization="none",
                    centers=lambda c: len(c) == 1)
    trained_on = sorted({r["centers"][0] for r in single if r["augmentation"] == "none"},
                        key=lambda c: (c != config.train_center, c))
    if not trained_on:
        return None
    tests = sorted({r["center"] for r in single})
    figure, axes = _panels(len(tests), rows=len(trained_on))
    for i, home in enumerate(trained_on):
        for j, center in enumerate(tests):
            series = [(aug, _AUGMENTATION_COLORS.get(aug, f"C{k + 3}"),
                       select(single, centers=(home,), augmentation=aug, center=center))
                      for k, aug in enumerate(experiment_1_augmentations(config))]
            _subject_lines(axes[i, j], series, f"trained on {home}, tested on {center}")
    return _save(figure, path, "Figure 6: effect of data augmentation (single-center models)")


def figure_7(rows: Sequence[Row], config: ExperimentsConfig, path: Path) -> Path | None:
    """Per-subject Dice on the unseen centers without harmonization, with histogram matching, with CycleGAN;
    one row of panels per training center that was harmonized for (``every_training_center``: all).

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import cyclegan_cell, make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> model = train_cell(("center1",), "spatial_intensity", 0)
        >>> rows = scored_rows([model], ("center2",), ("none", "histogram"), cases=2)
        >>> figure_7(rows, config, Path(tmp.name) / "figure_7.png").name
        'figure_7.png'
        >>> figure_7(rows[:2], config, Path(tmp.name) / "no.png") is None  # no harmonized rows: skipped
        True
        >>> other = train_cell(("center2",), "spatial_intensity", 0)  # a pair's GAN scores both centers' models
        >>> pair = cyclegan_cell(model, "center2", reverse=other)
        >>> rows += scored_rows([other], ("center1",)) + scored_rows([pair], ("center1",), ("cyclegan",))
        >>> figure_7(rows, config, Path(tmp.name) / "figure_7.png").name  # two rows: trained on center1, center2
        'figure_7.png'
        >>> tmp.cleanup()
    """
    home = config.train_center
    gan = select(rows, kind="cyclegan")
    single = select(rows, kind="train", subjects_per_center=None, augmentation="spatial_intensity",
                    centers=lambda c: len(c) == 1)
    harmonized = {r["centers"][0] for r in single if r["harmonization"] == "histogram"}
    harmonized |= {r.get("base_center") or home for r in gan}
    trained_on = sorted(harmonized, key=lambda c: (c != home, c))
    if not trained_on:
        return None
    scored = {r["center"] for r in single if r["centers"][0] in harmonized} | {r["center"] for r in gan}
    if trained_on == [home]:
        scored.discard(home)
    tests = sorted(scored, key=lambda c: (c != home, c))
    figure, axes = _panels(len(tests), rows=len(trained_on))
    for i, trained in enumerate(trained_on):
        base = select(single, centers=(trained,))
        for j, center in enumerate(tests):
            ax = axes[i, j]
            if center == trained:
                ax.axis("off")
                continue
            series = [("no harmonization", "tab:blue", select(base, harmonization="none", center=center)),
                      ("histogram matching", "tab:orange", select(base, harmonization="histogram", center=center)),
                      ("CycleGAN", "tab:green", [r for r in select(gan, center=center)
                                                 if from_center(r, trained, home)])]
            _subject_lines(ax, series, f"trained on {trained}, tested on {center}")
    return _save(figure, path, "Figure 7: image harmonization at test time")


def _reference(rows: Sequence[Row], center: str) -> list[Row]:
    """Rows of the model trained (with augmentation) on ``center`` itself, tested there."""
    return select(rows, kind="train", centers=(center,), augmentation="spatial_intensity", subjects_per_center=None,
                  harmonization="none", center=center)


def _reference_line(ax: Any, rows: Sequence[Row], center: str, color: str, label: str) -> None:
    mean, sd = _stats(_reference(rows, center))
    if not np.isnan(mean):
        ax.axhline(mean, color=color, label=label)
        ax.axhspan(mean - sd, mean + sd, color="gray", alpha=0.2)


def figure_8(rows: Sequence[Row], config: ExperimentsConfig, blocks: int, path: Path) -> Path | None:
    """Fine-tuning k encoder (red) or decoder (blue) blocks per new center; black: trained on it.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import finetune_cell, make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> base = train_cell(("center1",), "spatial_intensity", 0)
        >>> tuned = [finetune_cell(base, "center2", trainable, "1") for trainable in ("encoder:1", "decoder:1")]
        >>> rows = scored_rows(tuned, ("center2",))
        >>> figure_8(rows, config, 4, Path(tmp.name) / "figure_8.png").name
        'figure_8.png'
        >>> figure_8(rows[:1], config, 4, Path(tmp.name) / "no.png") is None  # one setting: no sweep to draw
        True
        >>> tmp.cleanup()
    """
    tuned = select(rows, kind="finetune", amount=config.finetune_amount)
    tuned = [r for r in tuned if r["trainable"].startswith(("encoder:", "decoder:"))
             and from_center(r, config.train_center, config.train_center)]
    if len({r["trainable"] for r in tuned}) < 2:
        return None
    centers = sorted({r["center"] for r in tuned})
    figure, axes = _panels(len(centers))
    for ax, center in zip(axes[0], centers, strict=True):
        for part, color in (("encoder", "red"), ("decoder", "blue")):
            ks = sorted({int(r["trainable"].split(":")[1]) for r in tuned if r["trainable"].startswith(part)})
            stats = [_stats(select(tuned, center=center, trainable=f"{part}:{k}")) for k in ks]
            ax.errorbar(ks, [s[0] for s in stats], yerr=[s[1] for s in stats], color=color, marker="o",
                        capsize=3, label=f"{part} blocks fine-tuned")
        _reference_line(ax, rows, center, "black", f"trained on {center}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=f"{config.train_center} -> {center} ({config.finetune_amount} subjects)",
               xlabel="fine-tuned blocks", ylabel="Dice", ylim=(0, 1))
        ax.legend(fontsize=7)
    return _save(figure, path, "Figure 8: transfer learning by number of fine-tuned blocks")


def figure_9(rows: Sequence[Row], config: ExperimentsConfig, blocks: int, path: Path) -> Path | None:
    """Bars per new center: multi-center model (training center + X) vs the fine-tuned model.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import finetune_cell, make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> multi = train_cell(("center1", "center2"), "spatial_intensity", 0, config.subjects_per_center)
        >>> tuned = finetune_cell(train_cell(("center1",), "spatial_intensity", 0), "center2", "all", "1")
        >>> rows = scored_rows([multi, tuned], ("center2",))
        >>> figure_9(rows, config, 4, Path(tmp.name) / "figure_9.png").name
        'figure_9.png'
        >>> figure_9(rows[:1], config, 4, Path(tmp.name) / "no.png") is None  # no fine-tuned model to compare
        True
        >>> tmp.cleanup()
    """
    selectors = column_selectors(config, blocks)
    multi = [r for r in rows if selectors["multi_center"](r)]
    transfer = [r for r in rows if selectors["transfer"](r)]
    centers = sorted({r["center"] for r in multi} & {r["center"] for r in transfer})
    if not centers:
        return None
    figure, axes = _panels(1, width=1.6 * len(centers) + 2)
    ax, x = axes[0, 0], np.arange(len(centers))
    for offset, label, color, chosen in ((-0.2, "multi-center", "tab:orange", multi),
                                         (0.2, f"TL ({main_trainable(config, blocks)})", "tab:green", transfer)):
        stats = [_stats(select(chosen, center=c)) for c in centers]
        ax.bar(x + offset, [s[0] for s in stats], 0.4, yerr=[s[1] for s in stats], capsize=3, color=color, label=label)
    ax.set(xticks=x, xticklabels=centers, ylabel="Dice", ylim=(0, 1), title=f"{config.train_center} + X vs TL to X")
    ax.legend(fontsize=7)
    return _save(figure, path, "Figure 9: transfer learning vs multi-center training")


def figure_10(rows: Sequence[Row], config: ExperimentsConfig, blocks: int, path: Path) -> Path | None:
    """Dice by the amount of the new center's subjects used for fine-tuning; yellow: trained on it; grey:
    pretrained on ``config.pretrain_source`` (cine) instead of the training center.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import finetune_cell, make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> base = train_cell(("center1",), "spatial_intensity", 0)
        >>> tuned = [finetune_cell(base, "center2", "all", amount) for amount in ("1", "100%")]
        >>> rows = scored_rows(tuned, ("center2",))
        >>> figure_10(rows, config, 4, Path(tmp.name) / "figure_10.png").name
        'figure_10.png'
        >>> figure_10(rows[:1], config, 4, Path(tmp.name) / "no.png") is None  # one amount: no sweep to draw
        True
        >>> cine = train_cell(("acdc_cine",), "spatial_intensity", 0)  # the grey line: pretrained on cine
        >>> from_cine = [finetune_cell(cine, "center2", "all", amount, "acdc_cine") for amount in ("1", "100%")]
        >>> rows += scored_rows(from_cine, ("center2",))
        >>> figure_10(rows, config, 4, Path(tmp.name) / "figure_10.png").name
        'figure_10.png'
        >>> tmp.cleanup()
    """
    main = main_trainable(config, blocks)
    tuned = select(rows, kind="finetune", trainable=main)
    amounts = [a for a in config.amounts if select(tuned, amount=a)]
    if len(amounts) < 2:
        return None
    sources = [config.train_center] + sorted({r["base_center"] for r in tuned if r.get("base_center")})
    centers = sorted({r["center"] for r in tuned})
    figure, axes = _panels(len(centers))
    for ax, center in zip(axes[0], centers, strict=True):
        for source, color in zip(sources, ("fuchsia", "gray", "tab:brown", "tab:cyan"), strict=False):
            chosen = [r for r in select(tuned, center=center) if from_center(r, source, config.train_center)]
            stats = [_stats(select(chosen, amount=a)) for a in amounts]
            ax.errorbar(range(len(amounts)), [s[0] for s in stats], yerr=[s[1] for s in stats], color=color,
                        marker="o", capsize=3, label=f"pretrained on {source}")
        _reference_line(ax, rows, center, "gold", f"trained on {center}")
        ax.set(title=f"{center} ({main})", xticks=range(len(amounts)), xticklabels=amounts,
               xlabel="subjects of the new center", ylabel="Dice", ylim=(0, 1))
        ax.legend(fontsize=7)
    return _save(figure, path, "Figure 10: transfer learning by amount of new-center data")


def figure_11(rows: Sequence[Row], config: ExperimentsConfig, path: Path) -> Path | None:
    """Mean Dice over every test center of models trained on 1-4 centers, three settings.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> rows = scored_rows([train_cell(centers, "none", 0) for centers in (("center1",), ("center1", "center2"))],
        ...                    ("center1", "center2"))
        >>> figure_11(rows, config, Path(tmp.name) / "figure_11.png").name
        'figure_11.png'
        >>> figure_11(rows[:2], config, Path(tmp.name) / "no.png") is None  # single-center models only
        True
        >>> tmp.cleanup()
    """
    combos = [r for r in select(rows, kind="train", centers=lambda c: c[0] == config.train_center)
              if r["subjects_per_center"] == subjects_for(config, len(r["centers"]))]
    names = sorted({r["centers"] for r in combos if select(combos, centers=r["centers"], augmentation="none")},
                   key=lambda c: (len(c), c))
    if len({len(c) for c in names}) < 2:
        return None
    settings = (("baseline (no augmentation)", "tab:blue", "none", "none"),
                ("data augmentation", "tab:green", "spatial_intensity", "none"),
                ("histogram matching", "tab:orange", "none", "histogram"))
    figure, axes = _panels(1, width=max(5.0, 0.9 * len(names) + 2), height=3.4)
    ax = axes[0, 0]
    for label, color, augmentation, harmonization in settings:
        stats = []
        for centers in names:
            chosen = select(combos, centers=centers, augmentation=augmentation, harmonization=harmonization)
            per_center = [per_seed(select(chosen, center=c)) for c in sorted({r["center"] for r in chosen})]
            seeds = set.intersection(*(set(p) for p in per_center)) if per_center else set()
            stats.append(mean_sd([float(np.mean([p[s] for p in per_center])) for s in sorted(seeds)]))
        ax.errorbar(range(len(names)), [np.nan if s["mean"] is None else s["mean"] for s in stats],
                    yerr=[s["sd"] or 0.0 for s in stats], marker="o", capsize=3, color=color, label=label)
    ax.set(xticks=range(len(names)), xticklabels=["+".join(c) for c in names], ylabel="mean Dice, all test centers",
           ylim=(0, 1), title="models trained on 1-4 centers")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7)
    return _save(figure, path, "Figure 11: multi-center training")


def _slice_images(cell_dir: Path, test_dir: Path, case: str, harmonization: str, center: str) -> tuple[Any, ...]:
    """(image, prediction, reference) of the slice with the most reference foreground, or None."""
    name = center if harmonization == "none" else f"{center}_{harmonization}"
    predictions = sorted((cell_dir / "predictions" / name).glob(f"{case}.*"))
    images = sorted((test_dir / "imagesTr").glob(f"{case}_0000.*"))
    labels = sorted((test_dir / "labelsTr").glob(f"{case}.*"))
    if not (predictions and images and labels):
        return ()
    image, prediction, reference = (io.read_image(images[0])[0], io.read_label(predictions[0])[0],
                                    io.read_label(labels[0])[0])
    z = int(np.argmax((reference > 0).sum(axis=(1, 2))))
    return image[z], prediction[z], reference[z]


def _overlay(ax: Any, image: np.ndarray, prediction: np.ndarray, reference: np.ndarray) -> None:
    low, high = np.percentile(image, (1, 99))
    ax.imshow(np.clip((image - low) / max(high - low, 1e-6), 0, 1), cmap="gray")
    colored = np.zeros((*prediction.shape, 4))
    for label, color in _LABEL_COLORS.items():
        colored[prediction == label] = (*color, 0.45)
    ax.imshow(colored)
    for label in _LABEL_COLORS:
        if (reference == label).any():
            ax.contour(reference == label, levels=[0.5], colors="white", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_12(rows: Sequence[Row], config: ExperimentsConfig, blocks: int, test: dict[str, Path],
              out_dir: Path, path: Path) -> Path | None:
    """One slice per test center (rows) and Table 5 model (columns), seed 0: prediction over the image
    (red blood pool, green myocardium), reference contours in white.

    Usage (rows of finished cells with predictions in ``OUT/cells/<id>/predictions``; a test dataset per center)::

        figure_12(rows, config, num_encoder_blocks, {"center1": Path("runs/x/test/center1")}, Path("runs/x"),
                  Path("runs/x/figures/figure_12.png"))
    """
    selectors = column_selectors(config, blocks)
    chosen: dict[str, list[Row]] = {c: [r for r in rows if r["seed"] == 0 and want(r)] for c, want in selectors.items()}
    columns = [c for c in selectors if chosen[c]]
    centers = sorted({r["center"] for c in columns for r in chosen[c]}, key=lambda c: (c != config.train_center, c))
    if not columns:
        return None
    figure, axes = _panels(len(columns), width=2.2, height=2.3, rows=len(centers))
    for i, center in enumerate(centers):
        for j, column in enumerate(columns):
            ax, here = axes[i, j], select(chosen[column], center=center)
            ax.axis("off")
            if here:
                row = min(here, key=lambda r: r["case"])
                slices = _slice_images(out_dir / "cells" / row["cell"], test[center], row["case"],
                                       row["harmonization"], center)
                if slices:
                    _overlay(ax, *slices)
            ax.set_title(f"{column_header(column)}\n{center}" if i == 0 else center, fontsize=7)
    return _save(figure, path, "Figure 12: predictions (colour) and references (white), seed 0")


def render_figures(rows: Sequence[Row], config: ExperimentsConfig, test: dict[str, Path], blocks: int,
                   out_dir: Path) -> list[Path]:
    """Write every figure the rows allow to ``out_dir/figures/figure_<n>.png``; returns the paths written.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> from lgeseg.experiments.example_rows import scored_rows
        >>> config = make_config("tiny", out_dir=Path("runs/tiny"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cells = [train_cell(("center1",), augmentation, 0) for augmentation in experiment_1_augmentations(config)]
        >>> rows = scored_rows(cells, ("center1", "center2"))
        >>> test = {center: Path(tmp.name) / "test" / center for center in ("center1", "center2")}
        >>> [path.name for path in render_figures(rows, config, test, 4, Path(tmp.name))]  # what experiment 1 shows
        ['figure_6.png', 'figure_12.png']
        >>> tmp.cleanup()
    """
    folder = Path(out_dir) / "figures"
    makers: dict[int, Callable[[Path], Path | None]] = {
        6: lambda p: figure_6(rows, config, p),
        7: lambda p: figure_7(rows, config, p),
        8: lambda p: figure_8(rows, config, blocks, p),
        9: lambda p: figure_9(rows, config, blocks, p),
        10: lambda p: figure_10(rows, config, blocks, p),
        11: lambda p: figure_11(rows, config, p),
        12: lambda p: figure_12(rows, config, blocks, test, out_dir, p),
    }
    written = []
    for number, make in makers.items():
        path = make(folder / f"figure_{number}.png")
        if path is None:
            logger.info("figure %d skipped: the experiments it shows were not run", number)
        else:
            written.append(path)
    return written
