"""Train/validation splits by subject, stored in ``splits.json`` and reused.

``splits.json`` is a list with one ``{"train": [...], "val": [...]}`` per fold; cases are named
``"<dataset>/<case_id>"``. Each dataset is split on its own (every center keeps 80/20), and the
frames of one patient (``..._frame01``, ``..._frame12``, ``..._ED``/``..._ES``) stay on one side.

Example:
    >>> folds = make_splits(["a/p1_frame01", "a/p1_frame09", "a/p2_frame01"], num_folds=5)
    >>> fold = folds[0]  # {"train": [...], "val": [...]}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lgeseg.core.records import load_json, save_json
from lgeseg.model.folder import SPLITS_FILE

log = logging.getLogger(__name__)

#: The seed of the split shuffle; fixed so that folds do not change with the training seed.
SPLIT_SEED = 12345
_FRAME_SUFFIX = re.compile(r"_(frame\d+|ED|ES|ed|es)$")


def subject_of(key: str) -> str:
    """The subject a case belongs to: ``"acdc/patient001_frame12"`` -> ``"acdc/patient001"``.

    Example:
        >>> subject_of("acdc/patient001_frame12"), subject_of("mnms/A1D9Z7_ED"), subject_of("myops/case_101")
        ('acdc/patient001', 'mnms/A1D9Z7', 'myops/case_101')
    """
    return _FRAME_SUFFIX.sub("", key)


def make_splits(keys: Sequence[str], num_folds: int = 5, seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """K-fold splits of ``keys`` (``"<dataset>/<case>"``) by subject, per dataset.

    With fewer subjects than folds, each fold validates on one subject; with one subject, the
    single case set is both training and validation data (a warning is logged).

    Example:
        >>> folds = make_splits(["a/p1_frame01", "a/p1_frame09", "a/p2_frame01", "a/p3_frame01", "b/q1", "b/q2"], 2)
        >>> folds[1]  # p1's two frames on one side; each dataset split on its own
        {'train': ['a/p1_frame01', 'a/p1_frame09', 'a/p2_frame01', 'b/q1'], 'val': ['a/p3_frame01', 'b/q2']}
    """
    datasets: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        datasets.setdefault(key.split("/", 1)[0], []).append(key)
    folds: list[dict[str, list[str]]] = [{"train": [], "val": []} for _ in range(num_folds)]
    for name, members in sorted(datasets.items()):
        subjects = sorted({subject_of(k) for k in members})
        order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
        folds_here = min(num_folds, len(order))
        for fold in range(num_folds):
            val_subjects = {s for i, s in enumerate(order) if i % folds_here == fold % folds_here}
            val = [k for k in members if subject_of(k) in val_subjects]
            train = [k for k in members if subject_of(k) not in val_subjects]
            if not train:
                log.warning("dataset %s has a single subject: it is used for training and validation", name)
                train = val
            folds[fold]["train"] += train
            folds[fold]["val"] += val
    return folds


def limit_subjects(keys: Sequence[str], per_dataset: int, seed: int = SPLIT_SEED) -> list[str]:
    """Keep ``per_dataset`` subjects of every dataset (all frames of a kept subject), chosen reproducibly.

    Equal subject counts per center are how the paper's Table 4 balances multi-center models. A
    dataset with fewer subjects keeps them all (a warning is logged). Returns the kept keys, sorted.

    Example:
        >>> limit_subjects(["a/p1_frame01", "a/p1_frame09", "a/p2_frame01", "b/q1", "b/q2"], per_dataset=1)
        ['a/p1_frame01', 'a/p1_frame09', 'b/q1']
    """
    if per_dataset < 1:
        raise ValueError(f"subjects_per_center must be >= 1, found {per_dataset}")
    datasets: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        datasets.setdefault(key.split("/", 1)[0], []).append(key)
    kept: list[str] = []
    for name, members in sorted(datasets.items()):
        subjects = sorted({subject_of(k) for k in members})
        if len(subjects) < per_dataset:
            log.warning("dataset %s has %d subjects, fewer than subjects_per_center=%d: all are used",
                        name, len(subjects), per_dataset)
        order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
        chosen = set(order[:per_dataset])
        kept += [k for k in members if subject_of(k) in chosen]
    return sorted(kept)


def load_or_create_splits(path: str | Path, keys: Sequence[str], num_folds: int = 5) -> list[dict[str, list[str]]]:
    """Read ``splits.json`` when it exists (checking it covers exactly ``keys``), else create and write it.

    Raises ``ValueError`` naming the file when it lists other cases than the training data has.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "splits.json"
        >>> folds = load_or_create_splits(path, ["a/p1", "a/p2", "a/p3"], num_folds=3)  # written
        >>> load_or_create_splits(path, ["a/p1", "a/p2", "a/p3"], num_folds=3) == folds  # read back
        True
        >>> load_or_create_splits(path, ["a/p1", "a/p2"])
        Traceback (most recent call last):
        ValueError: .../splits.json: the stored split does not match the training data (in the split only: ['a/p3']; ...
        >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        folds = make_splits(keys, num_folds)
        save_json(folds, path)
        return folds
    folds = load_json(path)
    if not isinstance(folds, list) or not all(isinstance(f, dict) and {"train", "val"} <= set(f) for f in folds):
        raise ValueError(f"{path}: expected a list of {{'train': [...], 'val': [...]}} per fold")
    listed = set(folds[0]["train"]) | set(folds[0]["val"])
    wanted = set(keys)
    if listed != wanted:
        extra, missing = sorted(listed - wanted), sorted(wanted - listed)
        raise ValueError(
            f"{path}: the stored split does not match the training data (in the split only: {extra[:5]}; "
            f"in the data only: {missing[:5]}). Train into a new model folder or delete splits.json."
        )
    return folds


def fold_of(folds: list[dict[str, list[str]]], fold: int,
            path: str | Path = SPLITS_FILE) -> tuple[list[str], list[str]]:
    """(train keys, validation keys) of ``fold``; ``ValueError`` naming the file when it has fewer folds.

    Example:
        >>> folds = [{"train": ["a/p1"], "val": ["a/p2"]}, {"train": ["a/p2"], "val": ["a/p1"]}]
        >>> fold_of(folds, 1)
        (['a/p2'], ['a/p1'])
        >>> fold_of(folds, 2)
        Traceback (most recent call last):
        ValueError: splits.json: fold 2 requested but the split has folds 0..1
    """
    if not 0 <= fold < len(folds):
        raise ValueError(f"{path}: fold {fold} requested but the split has folds 0..{len(folds) - 1}")
    return list(folds[fold]["train"]), list(folds[fold]["val"])
