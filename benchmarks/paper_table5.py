"""Publish a finished (or partly finished) ``lgeseg_experiments`` run as a Table 5 section of docs/RESULTS.md.

Reads ``RUN/results.json`` and ``RUN/table.md`` (written by ``lgeseg_experiments``, or by
``lgeseg_experiments -o RUN --summary-only`` for the cells finished so far), copies the run's
figures to ``docs/images/experiments_<name>_<figure>.png`` and writes the section ``--marker`` of
docs/RESULTS.md: the command that reproduces the run, its data and settings, the seeds behind each
column, the time the cells took, Table 5 (mean of blood pool and myocardium) and the same table for
the myocardium alone.

Usage::

    lgeseg_experiments -o runs/exp5 -e 1 2 3 --block-counts --amounts --epochs 10 --seeds 5
    python benchmarks/paper_table5.py --run runs/exp5
    lgeseg_experiments -o runs/exp4 -e 4 --combination-sizes 2 --epochs 10 --seeds 5   # experiment 4 alone
    python benchmarks/paper_table5.py --run runs/exp4 --marker paper_table5_e4 --images quick_e4
    python benchmarks/real_layout.py --out runs/exp_real_data     # real data: cine -> myops_lge
    lgeseg_experiments -o runs/exp_real --raw runs/exp_real_data/raw --test runs/exp_real_data/test \\
        --train-center cine --extra-augmentations lge_dg --epochs 10 --seeds 3
    python benchmarks/paper_table5.py --run runs/exp_real --marker paper_table5_real --images quick_real
    lgeseg_experiments -o runs/exp_real_medium --scale medium --raw runs/exp_real_data/raw \\
        --test runs/exp_real_data/test --train-center cine --extra-augmentations lge_dg --block-counts --amounts \\
        --seeds 3 --jobs 2 --threads 1                            # real data at 1000 iterations per model
    python benchmarks/paper_table5.py --run runs/exp_real_medium --marker paper_table5_real_medium \\
        --images medium_real
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from _common import ROOT, publish_section

from lgeseg.experiments.cells import GRID_FILE, load_workspace
from lgeseg.experiments.grid import make_config
from lgeseg.experiments.summary import format_table

IMAGES = ROOT / "docs" / "images"
#: Where the published runs ran, unless ``--machine`` says otherwise.
DEFAULT_MACHINE = "one torch thread each, on 2 cores shared with other work"
#: ``lgeseg_experiments`` options rebuilt from the run's config: (config field, option), lists as values.
_OPTIONS = (("experiments", "-e"), ("extra_augmentations", "--extra-augmentations"),
            ("block_counts", "--block-counts"), ("amounts", "--amounts"),
            ("combination_sizes", "--combination-sizes"), ("subjects_per_center", "--subjects-per-center"),
            ("subjects_by_size", "--subjects-by-size"), ("pretrain_source", "--pretrain-source"),
            ("epochs", "--epochs"), ("iterations_per_epoch", "--iterations-per-epoch"))


def scale_defaults(scale: str) -> dict:
    """A scale's settings as ``results.json`` records a config (lists, not tuples)."""
    return make_config(scale, out_dir=Path(f"runs/{scale}")).to_dict()


def seeds_per_column(table5: dict[str, dict[str, dict[str, float | int | None]]]) -> dict[str, int]:
    """``{column: seeds}``: the fewest seeds behind any test center of each Table 5 column."""
    return {column: min(int(stats["n"] or 0) for stats in centers.values()) for column, centers in table5.items()}


def command_line(run: Path, config: dict) -> str:
    """The ``lgeseg_experiments`` command of the run: its scale and the options that differ from the scale's."""
    scale = config.get("scale", "quick")
    defaults = scale_defaults(scale)
    parts = ["lgeseg_experiments", "-o", f"runs/{run.name}"] + ([] if scale == "quick" else ["--scale", scale])
    if config.get("raw_dir"):
        parts += ["--raw", f"runs/{Path(config['raw_dir']).parent.name}/raw", "--test",
                  f"runs/{Path(config['test_dir']).parent.name}/test", "--train-center", config["train_center"]]
    for field, option in _OPTIONS:
        value = config.get(field)
        if field not in config or value == defaults[field]:  # a run older than the option had its default
            continue
        values = value if isinstance(value, list) else [value]
        parts.append(" ".join([option, *(str(v) for v in values)]).strip())
    return " ".join(parts + ["--seeds N"])


def center_names(run: Path) -> list[str]:
    """The run's centers, sorted, as the runner recorded them in ``RUN/grid.json`` (its test datasets)."""
    return sorted(load_workspace(run / GRID_FILE)[0].test)


def data_text(config: dict, centers: list[str]) -> str:
    """One sentence on the data: synthetic subjects per center, or each real center's cases."""
    if not config.get("raw_dir"):
        return (f"Data: {config['cases_per_center']} training and {config['test_cases_per_center']} test subjects "
                f"per synthetic center")
    parts = []
    for center in centers:
        counts = [json.loads((Path(config[d]) / center / "dataset.json").read_text())["numTraining"]
                  for d in ("raw_dir", "test_dir")]
        role = "training center" if center == config["train_center"] else "unseen center"
        parts.append(f"{center} ({role}): {counts[0]} training and {counts[1]} test volumes")
    return "Real data: " + "; ".join(parts) + " (`benchmarks/real_layout.py`)"


def experiments_text(config: dict) -> str:
    """``""`` for a run of all four experiments, else e.g. ``", experiment 4"`` for the section's heading."""
    experiments = sorted(config["experiments"])
    if experiments == [1, 2, 3, 4]:
        return ""
    return f", experiment{'s' if len(experiments) > 1 else ''} {', '.join(str(e) for e in experiments)}"


def settings_text(config: dict, centers: list[str]) -> str:
    """The training budget of the run's models: training, and fine-tuning (experiment 3) and CycleGAN
    (experiment 2) only when the run has them."""
    preset = config.get("preset") or "cpu"
    parts = [f"{config['epochs']} epochs x {config['iterations_per_epoch']} iterations of the `{preset}` preset's "
             f"batch per model" if config["iterations_per_epoch"] is not None else
             f"{config['epochs']} epochs of one pass over the training slices (the `{preset}` preset's batch) "
             f"per model"]
    if 3 in config["experiments"]:
        amount = config["finetune_amount"]
        amount = f"{amount} of the subjects" if amount.endswith("%") else f"{amount} subjects"
        parts.append(f"fine-tuning on {amount} for {config['finetune_epochs']} epochs")
    if 2 in config["experiments"] and "cyclegan" in config["harmonization"]:
        parts.append(f"CycleGAN {config['gan_epochs']} x {config['gan_iterations']} iterations")
    if 4 in config["experiments"]:
        by_size = config.get("subjects_by_size")
        balance = (f"{config['subjects_per_center']} subjects of each" if config.get("subjects_per_center")
                   else f"Table 4's {', '.join(map(str, by_size))} subjects of each center for 1, 2, ... centers"
                   if by_size else "all subjects, each center drawn with equal probability")
        sizes = ", ".join(str(n) for n in config["combination_sizes"] if n <= len(centers))
        parts.append(f"multi-center models on {sizes} centers ({balance})")
    return ", ".join(parts)


def copy_figures(run: Path, name: str) -> list[str]:
    """Copy ``RUN/figures/figure_*.png`` to docs/images as ``experiments_<name>_figure_*.png``; returns the
    docs-relative image paths."""
    copied = []
    for figure in sorted((run / "figures").glob("figure_*.png"), key=lambda p: int(p.stem.split("_")[1])):
        target = IMAGES / f"experiments_{name}_{figure.name}"
        shutil.copyfile(figure, target)
        copied.append(f"images/{target.name}")
    return copied


def section(run: Path, results: dict, figures: list[str], machine: str = DEFAULT_MACHINE) -> str:
    """The markdown of the section: command, settings, Table 5, its myocardium version, seeds, time, figures.

    ``machine`` says where the cells ran (results.json records the device, not the cores or the load)."""
    config, seconds = results["config"], results["seconds"]
    seeds = seeds_per_column(results["table5"])
    seed_text = ", ".join(f"{column} {n}" for column, n in seeds.items())
    where = "real data" if config.get("raw_dir") else "synthetic centers"
    missing = results["cells"]["missing"]
    most = max(seeds.values(), default=0)
    centers = center_names(run)
    lines = [
        f"## Table 5 at `{config['scale']}` scale{experiments_text(config)}, {most} seed{'s' if most != 1 else ''} "
        f"({where}, {results.get('device', 'cpu').upper()})",
        "",
        f"`{command_line(run, config)}` (run again with N = 1, 2, ... so that seeds finish one after another; "
        f"`benchmarks/paper_table5.py` writes this section). {data_text(config, centers)}; "
        f"{settings_text(config, centers)}. The {results['cells']['finished']} finished cells took "
        f"{seconds['cells_total'] / 3600:.1f} hours (the sum of their wall-clock times), "
        f"{machine}"
        + (f" ({len(missing)} cells of the grid not run yet)" if missing else "") + ". "
        f"Seeds per column: {seed_text}.",
        "",
        "Mean 3D Dice of blood pool and myocardium (the paper's Table 5) per seed, then mean ± SD over seeds:",
        "",
        format_table(results["table5"], config["train_center"]),
        "",
    ]
    myocardium = results.get("table5_by_structure", {}).get("myocardium")
    if myocardium:
        lines += ["Myocardium alone:", "", format_table(myocardium, config["train_center"]), ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="lgeseg_experiments output folder")
    parser.add_argument("--marker", default="paper_table5", help="section key in docs/RESULTS.md")
    parser.add_argument("--images", default=None,
                        help="name in the copied figures' file names (default: the run's scale)")
    parser.add_argument("--machine", default=DEFAULT_MACHINE,
                        help=f"where the cells ran, for the time sentence (default: {DEFAULT_MACHINE!r})")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/ alone")
    args = parser.parse_args()
    results_file = args.run / "results.json"
    if not results_file.is_file():
        parser.error(f"{results_file}: not found; run lgeseg_experiments -o {args.run} --summary-only first")
    results = json.loads(results_file.read_text())
    name = args.images or results["config"]["scale"]
    figures = [] if args.no_write else copy_figures(args.run, name)
    publish_section(section(args.run, results, figures, args.machine), args.marker, write=not args.no_write)


if __name__ == "__main__":
    main()
