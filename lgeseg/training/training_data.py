"""Which preprocessed data a training run uses: one or more preprocessed folders sharing one plan.

Usage (preprocessed folders)::

    data = open_training_data(["pre_center1", "pre_center2"], datasets=None)
    data.datasets, len(data.case_keys)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from lgeseg.core.errors import InvalidInputError
from lgeseg.core.records import (
    FINGERPRINT_FILE,
    PLANS_FILE,
    Fingerprint,
    Plan,
    PreprocessedCase,
    load_fingerprint,
    load_json,
    read_plan,
)
from lgeseg.datasets.layout import read_dataset_json
from lgeseg.planning.planner import plan_fingerprint
from lgeseg.preprocessing import load_preprocessed
from lgeseg.training.data import case_key


@dataclasses.dataclass
class TrainingData:
    """The preprocessed cases of a run and what they share.

    Attributes:
        folders: the preprocessed folders.
        plan: the one plan all folders were preprocessed with.
        fingerprint: ``fingerprint.json`` of the first folder (None when absent).
        entries: (record, npz path) of every selected case.
        datasets: selected dataset names, sorted.
        channel_names: channel index (string) -> name, from the datasets' ``dataset.json``.
        ignore_label: the ``"ignore"`` value that any selected dataset's ``dataset.json`` declares (nnU-Net's
            ignore label: voxels of unknown class, skipped by the loss and the validation Dice), or None.
            Datasets without one simply never hold it.
    """

    folders: tuple[Path, ...]
    plan: Plan
    fingerprint: Fingerprint | None
    entries: list[tuple[PreprocessedCase, Path]]
    datasets: tuple[str, ...]
    channel_names: dict[str, str]
    ignore_label: int | None = None

    @property
    def case_keys(self) -> list[str]:
        """``"<dataset>/<case>"`` of every case, sorted."""
        return sorted(case_key(record) for record, _ in self.entries)


def available_datasets(folder: Path) -> list[str]:
    """Dataset subfolders of a preprocessed folder (those holding ``.npz`` cases), sorted.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name in ("center1/p1.npz", "center2/p1.npz", "empty/notes.txt"):
        ...     (Path(tmp.name) / name).parent.mkdir(exist_ok=True)
        ...     (Path(tmp.name) / name).touch()
        >>> available_datasets(Path(tmp.name))
        ['center1', 'center2']
        >>> tmp.cleanup()
    """
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.npz")))


def _channel_names(folder: Path, dataset: str) -> dict[str, str]:
    path = folder / dataset / "dataset.json"
    if path.is_file():
        names = load_json(path).get("channel_names")
        if isinstance(names, dict) and names:
            return {str(k): str(v) for k, v in names.items()}
    return {"0": "LGE"}


def selected_ignore_label(owner: dict[str, Path], datasets: Sequence[str], plan: Plan) -> int | None:
    """The one ignore value the ``datasets`` (name -> preprocessed folder) declare, or None when none does.

    ``InvalidInputError`` when two datasets declare different values or one is not above every class of
    ``plan.labels`` (the network's outputs must not include it).

    Example:
        >>> import json, tempfile
        >>> from lgeseg.planning import small_plan
        >>> tmp = Path(tempfile.mkdtemp())
        >>> for name, labels in (("source", {"background": 0, "blood_pool": 1, "myocardium": 2}),
        ...                      ("target", {"background": 0, "blood_pool": 1, "myocardium": 2, "ignore": 3})):
        ...     (tmp / name).mkdir()
        ...     _ = (tmp / name / "dataset.json").write_text(json.dumps({"labels": labels}))
        >>> selected_ignore_label({"source": tmp, "target": tmp}, ["source", "target"], small_plan())
        3
        >>> selected_ignore_label({"source": tmp}, ["source"], small_plan()) is None
        True
        >>> import shutil; shutil.rmtree(tmp)
    """
    found: dict[int, str] = {}
    for name in datasets:
        path = owner[name] / name / "dataset.json"
        if path.is_file():
            value = read_dataset_json(path)[0].ignore_label
            if value is not None:
                found.setdefault(value, str(path))
    if len(found) > 1:
        raise InvalidInputError(f"datasets declare different ignore labels ({found}); one run takes one value: "
                                "give every dataset the same \"ignore\" value in dataset.json")
    if not found:
        return None
    value, path = next(iter(found.items()))
    if value <= max(plan.labels.values()):
        raise InvalidInputError(f"{path}: ignore label {value} must lie above every class of the plan's labels "
                                f"{plan.labels}")
    return value


def check_case_plans(entries: Sequence[tuple[PreprocessedCase, Path]], plan: Plan) -> None:
    """Refuse cases (``PRE/<dataset>/<case>.npz``) preprocessed with another plan than ``plan``, the one
    ``PRE/plans.json`` holds (``InvalidInputError`` naming the case's record).

    A case record's ``plan_fingerprint`` is compared with the plan's (``planning.plan_fingerprint``: the
    fields that change preprocessed data); a record without one (older folders) is not checked.

    Example:
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.core.records import CaseGeometry
        >>> geometry = CaseGeometry((1, 4, 4), (6.0, 1.6, 1.6), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> record = PreprocessedCase("c1_000", "center1", None, geometry, ((0, 1), (0, 4), (0, 4)), (1, 4, 4),
        ...                           (6.0, 1.6, 1.6), (1, 4, 4), plan_fingerprint="0123456789abcdef")
        >>> check_case_plans([(record, Path("pre/center1/c1_000.npz"))], small_plan())
        Traceback (most recent call last):
        lgeseg.core.errors.InvalidInputError: pre/center1/c1_000.json: case c1_000 was preprocessed with another plan
        ...
    """
    expected = plan_fingerprint(plan)
    for record, npz in entries:
        if record.plan_fingerprint and record.plan_fingerprint != expected:
            plans_path = npz.parent.parent / PLANS_FILE
            raise InvalidInputError(
                f"{npz.with_suffix('.json')}: case {record.case_id} was preprocessed with another plan (plan hash "
                f"{record.plan_fingerprint}) than {plans_path} holds ({expected}); training on it would mix plans: "
                f"preprocess again with lgeseg_plan_and_preprocess -d RAW -o {plans_path.parent} --overwrite")


def open_training_data(preprocessed: str | Path | Sequence[str | Path],
                       datasets: Sequence[str] | None = None) -> TrainingData:
    """List the cases of the selected datasets in one or more preprocessed folders.

    Args:
        preprocessed: preprocessed folder(s); all must hold the same ``plans.json``.
        datasets: dataset names to use (default: every dataset in the folders).

    Raises:
        FileNotFoundError: a folder or its ``plans.json`` is missing.
        ValueError: the plans differ, a requested dataset is absent, a dataset is in two folders, no cases, or
            a case was preprocessed with another plan than its folder's ``plans.json`` (``check_case_plans``).

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.fingerprint import extract_fingerprint
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.preprocessing import run_preprocessing
        >>> from lgeseg.synth import generate_multicenter
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raws = generate_multicenter(Path(tmp.name) / "raw", cases_per_center=2, centers=(1, 2), in_plane_size=32)
        >>> _ = run_preprocessing(raws, Path(tmp.name) / "pre", plan_experiment(extract_fingerprint(raws), None, "cpu"))
        >>> data = open_training_data(Path(tmp.name) / "pre", datasets=["center2"])
        >>> data.datasets, data.case_keys, data.channel_names
        (('center2',), ['center2/c2_000', 'center2/c2_001'], {'0': 'LGE'})
        >>> tmp.cleanup()
    """
    folders = (Path(preprocessed),) if isinstance(preprocessed, (str, Path)) else tuple(Path(p) for p in preprocessed)
    plans_dicts = []
    for folder in folders:
        if not (folder / PLANS_FILE).is_file():
            raise FileNotFoundError(f"{folder}: not a preprocessed folder (plans.json missing); "
                                    "run lgeseg_plan_and_preprocess first")
        read_plan(folder / PLANS_FILE)  # checks every field, naming the file
        plans_dicts.append(load_json(folder / PLANS_FILE))
    for folder, plans in zip(folders[1:], plans_dicts[1:], strict=True):
        if plans != plans_dicts[0]:
            raise ValueError(f"{folder / PLANS_FILE} differs from {folders[0] / PLANS_FILE}: all preprocessed "
                             "folders of one model must share one plan (use --plans-from when preprocessing)")
    found = {folder: available_datasets(folder) for folder in folders}
    owner: dict[str, Path] = {}
    for folder, names in found.items():
        for name in names:
            if name in owner:
                raise ValueError(f"dataset {name!r} is in both {owner[name]} and {folder}; pass each once")
            owner[name] = folder
    wanted = sorted(owner) if not datasets else sorted(set(datasets))
    missing = [name for name in wanted if name not in owner]
    if missing:
        raise ValueError(f"dataset(s) {missing} not found in {', '.join(map(str, folders))}; "
                         f"available: {sorted(owner) or 'none'}")
    entries = []
    for folder in folders:
        selected = [name for name in wanted if owner[name] == folder]
        if selected:
            entries += load_preprocessed(folder, selected)
    if not entries:
        raise ValueError(f"no preprocessed cases in {', '.join(map(str, folders))}")
    plan = Plan.from_dict(plans_dicts[0])
    check_case_plans(entries, plan)
    fingerprint_path = folders[0] / FINGERPRINT_FILE
    return TrainingData(
        folders=folders, plan=plan,
        fingerprint=load_fingerprint(fingerprint_path) if fingerprint_path.is_file() else None,
        entries=entries, datasets=tuple(wanted), channel_names=_channel_names(owner[wanted[0]], wanted[0]),
        ignore_label=selected_ignore_label(owner, wanted, plan),
    )
