"""Thin command-line front ends: argparse, then one call into a pipeline stage."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lgeseg.datasets.ids import DATASET_ID, dataset_id_folders, describe_matches

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

    The only place lgeseg reads ``nnUNet_raw``; see ``lgeseg.datasets.layout.resolve_dataset``.
    """
    # deferred: every command imports this package, and lgeseg, lgeseg_experiments or lgeseg_export_model
    # start without the dataset parser's NumPy and SimpleITK
    from lgeseg.datasets.layout import resolve_dataset

    return resolve_dataset(spec, os.environ.get(RAW_ENV))


#: nnU-Net v2's environment variables of its preprocessed data and of its trained models.
PREPROCESSED_ENV = "nnUNet_preprocessed"
RESULTS_ENV = "nnUNet_results"
#: The trainer and plans names of the folders lgeseg writes under ``$nnUNet_results`` / ``$nnUNet_preprocessed``:
#: ``lgesegTrainer__lgesegPlans__2d/fold_<k>`` beside nnU-Net's ``nnUNetTrainer__nnUNetPlans__2d``, and
#: ``lgesegPlans_2d`` beside nnU-Net's ``nnUNetPlans_2d``.
LGESEG_TRAINER, LGESEG_PLANS = "lgesegTrainer", "lgesegPlans"


def is_dataset_id(text: str) -> bool:
    """True for what nnU-Net accepts as a dataset id (``4``, ``004``, ``Dataset004``, ``Dataset004_LGE``).

    Example:
        >>> is_dataset_id("4"), is_dataset_id("Dataset004_LGE"), is_dataset_id("raw/center1")
        (True, True, False)
    """
    return DATASET_ID.fullmatch(str(text)) is not None


def nnunet_dataset_folder(spec: str, env: str) -> Path:
    """``$env/DatasetNNN_*`` for the dataset id ``spec`` (``env``: ``nnUNet_results`` or ``nnUNet_preprocessed``).

    Raises ``FileNotFoundError`` naming the variable when it is unset, and the pattern when not exactly
    one folder matches.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     os.environ["nnUNet_results"] = root
        ...     (Path(root) / "Dataset004_LGE").mkdir()
        ...     nnunet_dataset_folder("4", "nnUNet_results").name
        'Dataset004_LGE'
        >>> del os.environ["nnUNet_results"]
    """
    match = DATASET_ID.fullmatch(str(spec))
    if match is None:
        raise ValueError(f"{spec!r}: not an nnU-Net dataset id (4, 004, Dataset004 or Dataset004_Name)")
    root = os.environ.get(env)
    if not root:
        raise FileNotFoundError(f"dataset id {spec}: set {env} to the folder holding nnU-Net's DatasetNNN_Name folders "
                                "(or give the folders themselves)")
    pattern, found = dataset_id_folders(root, int(match.group("id")))
    if len(found) != 1:
        raise FileNotFoundError(f"dataset id {spec}: {describe_matches(found)} {pattern} in ${env} ({root})")
    return found[0]


def results_model_folder(dataset: str, configuration: str = "2d", trainer: str | None = None,
                         plans: str | None = None) -> Path:
    """The model ``nnUNetv2_predict -d ID -c CONFIG -tr TRAINER -p PLANS`` uses: a folder under ``$nnUNet_results``.

    ``$nnUNet_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>``. Without ``trainer`` and
    ``plans`` nnU-Net's default ``nnUNetTrainer__nnUNetPlans`` is taken, else the one folder of that
    configuration (an lgeseg model trained there is ``lgesegTrainer__lgesegPlans__2d``). Raises
    ``FileNotFoundError`` naming the folder looked for and the trained folders that are there.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     os.environ["nnUNet_results"] = root
        ...     (Path(root) / "Dataset004_LGE" / "lgesegTrainer__lgesegPlans__2d").mkdir(parents=True)
        ...     results_model_folder("4").name
        'lgesegTrainer__lgesegPlans__2d'
        >>> del os.environ["nnUNet_results"]
    """
    folder = nnunet_dataset_folder(dataset, RESULTS_ENV)
    trained = sorted(p.name for p in folder.glob(f"*__*__{configuration}") if p.is_dir())
    wanted = f"{trainer or '*'}__{plans or '*'}__{configuration}"
    if trainer is None and plans is None and (folder / "nnUNetTrainer__nnUNetPlans__" f"{configuration}").is_dir():
        return folder / f"nnUNetTrainer__nnUNetPlans__{configuration}"
    matches = sorted(p for p in folder.glob(wanted) if p.is_dir())
    if len(matches) == 1:
        return matches[0]
    what = "no folder" if not matches else f"{len(matches)} folders"
    raise FileNotFoundError(f"{folder}: {what} {wanted} (trained: {', '.join(trained) or 'none'}); choose one with "
                            "-tr TRAINER -p PLANS, or give the folder with -m")


def preprocessed_folder(dataset: str | Path, raw_name: str | None = None) -> Path:
    """lgeseg's preprocessed data of an nnU-Net dataset: ``$nnUNet_preprocessed/DatasetNNN_Name/lgesegPlans_2d``.

    (Beside nnU-Net's ``nnUNetPlans_2d``.) ``raw_name`` (the raw dataset folder's name) names the
    dataset's folder when it does not exist yet, as ``lgeseg_plan_and_preprocess -d ID`` without ``-o``
    makes it; else the one ``DatasetNNN_*`` folder of ``dataset``'s id is taken. Raises
    ``FileNotFoundError`` naming ``$nnUNet_preprocessed`` when it is unset or holds no such folder.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     os.environ["nnUNet_preprocessed"] = root
        ...     (Path(root) / "Dataset004_LGE").mkdir()
        ...     preprocessed_folder("4").relative_to(root).as_posix()
        'Dataset004_LGE/lgesegPlans_2d'
        >>> del os.environ["nnUNet_preprocessed"]
    """
    folder_name = f"{LGESEG_PLANS}_2d"
    if raw_name is not None:
        root = os.environ.get(PREPROCESSED_ENV)
        if not root:
            raise FileNotFoundError(f"no -o given: set {PREPROCESSED_ENV} (nnU-Net's folder of preprocessed data) or "
                                    "give the output folder with -o")
        return Path(root) / raw_name / folder_name
    return nnunet_dataset_folder(str(dataset), PREPROCESSED_ENV) / folder_name
