"""The paper's four domain-generalization experiments (Table 5, Figures 6-12) as one resumable grid.

Steps: ``prepare`` the data of every center -> ``build_grid`` (every cell, every seed) ->
``write_grid`` (``OUT/grid.json``) -> ``launch`` the cells (here, N local subprocesses, or
submitit jobs) -> ``summarize`` whatever finished (``results.json``, ``rows.json``, ``table.md``) ->
``render_figures`` (``figures/figure_6.png`` ... ``figure_12.png``).

Rerunning the same command skips finished cells and continues interrupted ones; ``summarize_folder``
rebuilds the tables and figures from a folder's finished cells alone.

Usage::

    results = run_experiments(make_config("tiny", out_dir=Path("runs/tiny"), seeds=2), jobs=2)
    print(format_table(results["table5"], "center1"))
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from lgeseg.experiments.cells import GRID_FILE, Workspace, load_workspace, prepare, write_grid
from lgeseg.experiments.grid import Cell, ExperimentsConfig, build_grid
from lgeseg.experiments.launcher import launch
from lgeseg.experiments.summary import collect, summarize

logger = logging.getLogger(__name__)


def default_threads(jobs: int) -> int:
    """Torch threads per cell when none are given: the CPU cores shared among ``jobs`` cells (at least 1).

    Example:
        >>> default_threads(10**6)  # more cells than cores: one thread each
        1
    """
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def run_experiments(config: ExperimentsConfig, launcher: str = "local", jobs: int = 1, threads: int | None = None,
                    submitit_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prepare, build and launch the grid, then summarize and draw; returns the summary.

    Args:
        config: the settings (``make_config(scale, ...)``).
        launcher: ``local`` or ``submitit`` (see ``lgeseg.experiments.launcher``).
        jobs: cells at once.
        threads: torch threads per cell (default ``default_threads(jobs)``); equal threads give
            equal results whatever ``jobs`` and the launcher.
        submitit_options: ``submitit.AutoExecutor`` options (``cluster``, ``slurm_partition``, ...).

    Returns:
        ``summarize``'s dict plus ``failed`` (cell ids) and ``figures`` (paths written).

    Usage (hours at the ``paper`` scale; ``lgeseg_experiments --scale tiny`` runs it so)::

        summary = run_experiments(make_config("tiny", out_dir=Path("runs/tiny")), launcher="local", jobs=2)
        summary["table5"], summary["failed"], summary["figures"]
    """
    if jobs < 1 or (threads is not None and threads < 1):
        raise ValueError(f"jobs (--jobs) and threads (--threads) must be >= 1, found jobs={jobs}, threads={threads}")
    start = time.perf_counter()
    workspace = prepare(config)
    cells = build_grid(config, list(workspace.test), workspace.num_encoder_blocks)
    grid_path = write_grid(workspace, cells)
    prepared = time.perf_counter() - start
    logger.info("grid: %d cells in %s", len(cells), grid_path)
    failed = launch(cells, grid_path, launcher, jobs, threads or default_threads(jobs), submitit_options)
    seconds = {"prepare": prepared, "wall": time.perf_counter() - start}
    results = _summarize(workspace, cells, seconds)
    results["failed"] = failed
    return results


def summarize_folder(out_dir: str | Path) -> dict[str, Any]:
    """Tables and figures from the finished cells of a grid folder (``OUT/grid.json``), running nothing.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.cells import workspace_for, write_grid, write_result
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> config = make_config("tiny", out_dir=Path(tmp.name), experiments=(1,))
        >>> cell = train_cell(("center1",), "none", seed=0)
        >>> _ = write_grid(workspace_for(config, ["center1"], "cpu", 4), [cell])
        >>> cases = {"c1_000": {"blood_pool": 0.9, "myocardium": 0.7}}
        >>> score = {"center": "center1", "harmonization": "none", "cases": cases}
        >>> _ = write_result(tmp.name, cell, [score], seconds=12.0, device="cpu")  # a finished cell
        >>> summary = summarize_folder(tmp.name)
        >>> summary["cells"], [Path(figure).name for figure in summary["figures"]]
        ({'finished': 1, 'missing': []}, ['figure_6.png', 'figure_12.png'])
        >>> tmp.cleanup()
    """
    workspace, cells = load_workspace(Path(out_dir) / GRID_FILE)
    return _summarize(workspace, list(cells.values()), {})


def _summarize(workspace: Workspace, cells: list[Cell], seconds: dict[str, float]) -> dict[str, Any]:
    from lgeseg.experiments.figures import render_figures  # deferred: matplotlib loads only to draw the figures

    out = Path(workspace.config.out_dir)
    results = summarize(out, workspace.config, cells, workspace.num_encoder_blocks, seconds)
    rows, _ = collect(out, cells)
    figures = render_figures(rows, workspace.config, workspace.test, workspace.num_encoder_blocks, out)
    results["figures"] = [str(path) for path in figures]
    return results
