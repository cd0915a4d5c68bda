"""Publish a finished (or partly finished) ``lgeseg_experiments`` run as docs/RESULTS.md's Table 5 section.

Reads ``RUN/results.json`` and ``RUN/table.md`` (written by ``lgeseg_experiments``, or by
``lgeseg_experiments -o RUN --summary-only`` for the cells finished so far), copies the run's
figures to ``docs/images/experiments_<scale>_<figure>.png`` and writes the section
``paper_table5`` of docs/RESULTS.md with the run's settings, the seeds behind each column and the
CPU/GPU time the cells took.

Usage::

    lgeseg_experiments -o runs/exp5 -e 1 2 3 --block-counts --amounts --epochs 10 --seeds 5
    python benchmarks/paper_table5.py --run runs/exp5
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from _common import ROOT, publish_section

IMAGES = ROOT / "docs" / "images"


def seeds_per_column(table5: dict[str, dict[str, dict[str, float | int | None]]]) -> dict[str, int]:
    """``{column: seeds}``: the fewest seeds behind any test center of each Table 5 column."""
    return {column: min(int(stats["n"] or 0) for stats in centers.values()) for column, centers in table5.items()}


def copy_figures(run: Path, scale: str) -> list[str]:
    """Copy ``RUN/figures/figure_*.png`` to docs/images; returns the docs-relative image paths."""
    copied = []
    for figure in sorted((run / "figures").glob("figure_*.png"), key=lambda p: int(p.stem.split("_")[1])):
        target = IMAGES / f"experiments_{scale}_{figure.name}"
        shutil.copyfile(figure, target)
        copied.append(f"images/{target.name}")
    return copied


def section(run: Path, results: dict, figures: list[str]) -> str:
    """The markdown of the section: command, settings, Table 5, seeds per column, time, figures."""
    config, seconds = results["config"], results["seconds"]
    seeds = seeds_per_column(results["table5"])
    seed_text = ", ".join(f"{column} {n}" for column, n in seeds.items())
    lines = [
        f"## Table 5 at `{config['scale']}` scale, {max(seeds.values(), default=0)} seeds (synthetic centers, CPU)",
        "",
        f"`lgeseg_experiments -o {run.name} -e {' '.join(map(str, config['experiments']))} --block-counts --amounts "
        f"--epochs {config['epochs']} --seeds N` (run again with N = 1, 2, ... so that seeds finish one "
        f"after another; `benchmarks/paper_table5.py` writes this section). {config['cases_per_center']} "
        f"training and {config['test_cases_per_center']} test subjects per synthetic center, "
        f"{config['epochs']} epochs x {config['iterations_per_epoch']} iterations of the `cpu` preset's batch per "
        f"model, fine-tuning on {config['finetune_amount']} subjects for {config['finetune_epochs']} epochs, "
        f"CycleGAN {config['gan_epochs']} x {config['gan_iterations']} iterations; device "
        f"{results.get('device', 'cpu')}. The cells took {seconds['cells_total'] / 3600:.1f} hours of wall clock "
        f"one after another, one torch thread each, on 2 cores shared with other work. "
        f"Mean 3D Dice of blood pool and myocardium per seed, then "
        f"mean ± SD over seeds; seeds per column: {seed_text}.",
        "",
        (run / "table.md").read_text().rstrip("\n"),
        "",
    ]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="lgeseg_experiments output folder")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/ alone")
    args = parser.parse_args()
    results_file = args.run / "results.json"
    if not results_file.is_file():
        parser.error(f"{results_file}: not found; run lgeseg_experiments -o {args.run} --summary-only first")
    results = json.loads(results_file.read_text())
    figures = [] if args.no_write else copy_figures(args.run, results["config"]["scale"])
    publish_section(section(args.run, results, figures), "paper_table5", write=not args.no_write)


if __name__ == "__main__":
    main()
