"""Launching cells: in this process, as N local subprocesses, or as jobs of a scheduler through submitit.

Cells run wave by wave (wave 2 needs wave 1's models). Every cell is an independent job that reads
``OUT/grid.json`` and writes its ``result.json``; a cell that fails is logged and left without a
result (the summary reports it missing), the other cells go on.

* ``local`` with ``jobs=1``: the cells one after another in this process.
* ``local`` with ``jobs=N``: N cells at once, each ``python -m lgeseg.experiments.launcher GRID CELL``
  in its own subprocess (log: ``OUT/cells/<id>/job.log``).
* ``submitit``: one job per cell on Slurm (``submitit.AutoExecutor``; ``cluster="local"`` runs the
  jobs as local processes, for testing), at most ``jobs`` at once. submitit is an optional extra:
  ``pip install 'lgeseg[slurm]'``.

Every cell runs with ``threads`` torch threads whatever the launcher, so results do not depend on
the launcher or on ``jobs``: each cell also sets its own seeds.

Usage::

    failed = launch(cells, Path("runs/x/grid.json"), launcher="local", jobs=2, threads=1)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lgeseg.experiments.cells import finished_result, load_workspace, run_cell
from lgeseg.experiments.grid import Cell, cell_folder

logger = logging.getLogger(__name__)

LAUNCHERS = ("local", "submitit")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, restoring the previous count after.

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    import torch  # deferred: the launcher process itself never loads torch unless it runs a cell

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cell_job(grid_path: str, cell_id: str, threads: int) -> str:
    """One cell as a job (a subprocess or a submitit job): read the grid, run the cell; returns its id.

    Example (a finished cell is run by ``launch``'s example):
        >>> import tempfile
        >>> from lgeseg.experiments.cells import workspace_for, write_grid
        >>> from lgeseg.experiments.grid import make_config
        >>> tmp = tempfile.TemporaryDirectory()
        >>> grid = write_grid(workspace_for(make_config("tiny", out_dir=Path(tmp.name)), ["center1"], "cpu", 4), [])
        >>> run_cell_job(str(grid), "train_center1_none_s0", threads=1)
        Traceback (most recent call last):
        ValueError: .../grid.json: no cell 'train_center1_none_s0'
        >>> tmp.cleanup()
    """
    workspace, cells = load_workspace(grid_path)
    if cell_id not in cells:
        raise ValueError(f"{grid_path}: no cell {cell_id!r}")
    with torch_threads(threads):
        run_cell(workspace, cells[cell_id])
    return cell_id


def launch(cells: Sequence[Cell], grid_path: Path, launcher: str = "local", jobs: int = 1, threads: int = 1,
           submitit_options: dict[str, Any] | None = None) -> list[str]:
    """Run ``cells`` wave by wave; returns the ids of the cells that failed (logged, not raised).

    Args:
        cells: cells of ``grid_path``'s grid.
        grid_path: ``OUT/grid.json`` written by ``write_grid``.
        launcher: ``local`` or ``submitit``.
        jobs: cells running at once.
        threads: torch threads of every cell.
        submitit_options: ``AutoExecutor`` options, e.g. ``{"cluster": "local"}`` or
            ``{"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 240}``.

    Example:
        >>> import tempfile
        >>> from lgeseg.experiments.cells import workspace_for, write_grid, write_result
        >>> from lgeseg.experiments.grid import make_config, train_cell
        >>> tmp = tempfile.TemporaryDirectory()
        >>> workspace = workspace_for(make_config("tiny", out_dir=Path(tmp.name)), ["center1"], "cpu", 4)
        >>> cell = train_cell(("center1",), "none", seed=0)
        >>> _ = write_result(tmp.name, cell, [], seconds=12.0, device="cpu")  # a finished cell: not run again
        >>> launch([cell], write_grid(workspace, [cell]), launcher="local", jobs=1)  # ids of failed cells
        []
        >>> launch([cell], Path(tmp.name) / "grid.json", launcher="cluster")
        Traceback (most recent call last):
        ValueError: launcher must be one of local, submitit, found 'cluster'
        >>> tmp.cleanup()
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, found {launcher!r}")
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, found jobs={jobs}, threads={threads}")
    finished = {c.id for c in cells if finished_result(Path(grid_path).parent, c) is not None}
    to_run = [c for c in cells if c.id not in finished]
    logger.info("%d cells (%d finished, %d to run: %d trained from scratch, %d built on them)", len(cells),
                len(finished), len(to_run), sum(c.wave == 1 for c in to_run), sum(c.wave > 1 for c in to_run))
    failed: list[str] = []
    for wave in sorted({cell.wave for cell in cells}):
        todo = [c for c in to_run if c.wave == wave and not set(c.needs) & set(failed)]
        failed += [c.id for c in to_run if c.wave == wave and set(c.needs) & set(failed)]
        logger.info("wave %d: %d cell(s) to run, %s launcher, %d at once", wave, len(todo), launcher, jobs)
        if not todo:
            continue
        if launcher == "submitit":
            failed += _run_submitit(todo, grid_path, jobs, threads, submitit_options or {})
        elif jobs == 1:
            failed += _run_here(todo, grid_path, threads)
        else:
            failed += _run_subprocesses(todo, grid_path, jobs, threads)
    return failed


def _run_here(cells: Sequence[Cell], grid_path: Path, threads: int) -> list[str]:
    failed = []
    for cell in cells:
        try:
            run_cell_job(str(grid_path), cell.id, threads)
        except Exception:  # one failing cell must not stop the grid
            logger.exception("cell %s failed", cell.id)
            failed.append(cell.id)
    return failed


def _subprocess(cell: Cell, grid_path: Path, threads: int) -> int:
    folder = cell_folder(grid_path.parent, cell)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "lgeseg.experiments.launcher", str(grid_path), cell.id, "--threads",
               str(threads)]
    with open(folder / "job.log", "a") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode


def _run_subprocesses(cells: Sequence[Cell], grid_path: Path, jobs: int, threads: int) -> list[str]:
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = dict(zip(cells, pool.map(lambda cell: _subprocess(cell, grid_path, threads), cells), strict=True))
    for cell, code in codes.items():
        if code != 0:
            logger.error("cell %s failed (exit code %d): see %s", cell.id, code,
                         cell_folder(grid_path.parent, cell) / "job.log")
            failed.append(cell.id)
    return failed


def _run_submitit(cells: Sequence[Cell], grid_path: Path, jobs: int, threads: int,
                  options: dict[str, Any]) -> list[str]:
    try:
        import submitit  # deferred: an optional dependency (lgeseg[slurm])
    except ImportError as err:
        raise ValueError("launcher 'submitit' needs the submitit package: pip install 'lgeseg[slurm]'") from err
    if not cells:
        return []
    options = dict(options)
    executor = submitit.AutoExecutor(folder=grid_path.parent / "submitit" / "%j", cluster=options.pop("cluster", None))
    executor.update_parameters(name="lgeseg_cell", slurm_array_parallelism=jobs, cpus_per_task=threads, **options)
    submitted = executor.map_array(run_cell_job, [str(grid_path)] * len(cells), [c.id for c in cells],
                                   [threads] * len(cells))
    failed = []
    for cell, job in zip(cells, submitted, strict=True):
        try:
            job.result()
        except Exception as err:  # a failed job leaves its cell without a result
            logger.error("cell %s failed in job %s: %s", cell.id, job.job_id, err)
            failed.append(cell.id)
    return failed


def main(argv: list[str] | None = None) -> int:
    """``python -m lgeseg.experiments.launcher GRID CELL [--threads T]``: run one cell (a local job).

    Usage (one cell of a grid as a job; ``launch`` starts it so with ``jobs > 1``)::

        python -m lgeseg.experiments.launcher runs/tiny/grid.json train_center1_none_s0 --threads 2
    """
    parser = argparse.ArgumentParser(prog="python -m lgeseg.experiments.launcher", description=main.__doc__)
    parser.add_argument("grid", help="OUT/grid.json")
    parser.add_argument("cell", help="cell id")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    run_cell_job(args.grid, args.cell, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
