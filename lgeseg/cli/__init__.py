"""Thin command-line front ends: argparse, then one call into a pipeline stage."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

#: nnU-Net v2's environment variable naming the folder of raw ``DatasetNNN_Name`` datasets.
RAW_ENV = "nnUNet_raw"


def exit_without_teardown(main: Callable[[], int]) -> None:
    """Run a CLI's ``main()`` and end the process with its exit code, skipping interpreter teardown.

    Tearing down an interpreter that has imported torch takes ~0.5 s on 2 CPU cores (a sixth of a
    one-case ``lgeseg_predict``). Every output is written (atomically) before ``main`` returns, so
    after flushing the standard streams and the logging handlers nothing is lost by ``os._exit``.
    Exceptions (and ``SystemExit`` from argparse) propagate and exit the normal way.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(int(code or 0))


def dataset_folder(spec: str | Path) -> Path:
    """A raw dataset folder from a path or an nnU-Net dataset id (``4``, ``Dataset004_LGE``) under ``$nnUNet_raw``.

    The only place lgeseg reads ``nnUNet_raw``; see ``lgeseg.dataset.resolve_dataset``.
    """
    # deferred: every command imports this package, and lgeseg, lgeseg_experiments or lgeseg_export_model
    # start without the dataset parser's NumPy and SimpleITK
    from lgeseg.dataset import resolve_dataset

    return resolve_dataset(spec, os.environ.get(RAW_ENV))
