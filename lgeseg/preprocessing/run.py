"""Preprocess raw datasets into ``PRE/<dataset>/<case>.npz`` + ``<case>.json``; load them back."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lgeseg.core.atomic import atomic_output
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import (
    FINGERPRINT_FILE,
    PLANS_FILE,
    Plan,
    PreprocessedCase,
    load_fingerprint,
    load_json,
    save_json,
)
from lgeseg.datasets.layout import RawCase, list_cases, read_dataset_json
from lgeseg.files import io
from lgeseg.planning.planner import plan_fingerprint
from lgeseg.preprocessing.arrays import effective_spacing, preprocess_arrays
from lgeseg.preprocessing.parallel import parallel_map

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Job:
    case: RawCase
    out_dir: Path
    plan: Plan
    plan_hash: str
    ignore_label: int | None = None


def _source_files(case: RawCase) -> tuple[str, ...]:
    paths = list(case.image_paths) + ([case.label_path] if case.label_path is not None else [])
    return tuple(str(Path(p).resolve()) for p in paths)


def is_up_to_date(case: RawCase, case_dir: Path, plan_hash: str) -> bool:
    """True when ``case_dir/<case>.npz``/``.json`` exist, were made with this plan from these
    source files, and are newer than every source file.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw, plan = tiny_planned_dataset(Path(tmp.name))
        >>> case = list_cases(raw)[0]
        >>> is_up_to_date(case, Path(tmp.name) / "pre", plan_fingerprint(plan))
        False
        >>> _ = preprocess_case(case, Path(tmp.name) / "pre", plan)
        >>> is_up_to_date(case, Path(tmp.name) / "pre", plan_fingerprint(plan))
        True
        >>> tmp.cleanup()
    """
    npz, record_path = case_dir / f"{case.case_id}.npz", case_dir / f"{case.case_id}.json"
    if not (npz.is_file() and record_path.is_file()):
        return False
    try:
        record = PreprocessedCase.from_dict(load_json(record_path))
    except ValueError:
        return False
    sources = _source_files(case)
    if record.plan_fingerprint != plan_hash or tuple(record.source_files) != sources:
        return False
    newest = max(os.stat(p).st_mtime for p in sources)
    return min(npz.stat().st_mtime, record_path.stat().st_mtime) >= newest


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def preprocess_case(case: RawCase, case_dir: Path, plan: Plan, plan_hash: str | None = None,
                    ignore_label: int | None = None) -> Path:
    """Read one raw case, preprocess it with ``plan`` and write ``case_dir/<case>.npz`` + ``.json``.

    ``ignore_label``: the dataset's ``"ignore"`` value (``DatasetInfo.ignore_label``), kept in the label.

    The ``.npz`` is written first and the ``.json`` last, both atomically, so a case whose
    ``.json`` exists is complete. Returns the ``.npz`` path.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw, plan = tiny_planned_dataset(Path(tmp.name))
        >>> npz = preprocess_case(list_cases(raw)[0], Path(tmp.name) / "pre", plan)
        >>> npz.name, sorted(p.name for p in npz.parent.iterdir())
        ('c1_000.npz', ['c1_000.json', 'c1_000.npz'])
        >>> tmp.cleanup()
    """
    channels = []
    geometry = None
    for path in case.image_paths:
        array, geometry_c = io.read_image(path)
        if geometry is not None and io.geometry_mismatch(geometry, geometry_c):
            raise ValueError(f"{path}: geometry differs from channel 0: {io.geometry_mismatch(geometry, geometry_c)}")
        geometry = geometry or geometry_c
        channels.append(array)
    if geometry is None:
        raise ValueError(f"case {case.case_id}: no image files")
    label = None
    if case.label_path is not None:
        label, label_geometry = io.read_label(case.label_path)
        mismatch = io.geometry_mismatch(geometry, label_geometry)
        if mismatch:
            raise ValueError(f"{case.label_path}: label geometry differs from the image: {'; '.join(mismatch)}")
    try:
        image_pp, label_pp, box, shape_after_crop = preprocess_arrays(np.stack(channels), geometry, plan, label,
                                                                      ignore_label)
    except ValueError as err:
        raise ValueError(f"{case.image_paths[0]}: {err}") from err
    arrays = {"image": image_pp} if label_pp is None else {"image": image_pp, "label": label_pp}
    npz = case_dir / f"{case.case_id}.npz"
    _save_npz_atomic(npz, **arrays)
    shape_pp = tuple(int(v) for v in image_pp.shape[1:])
    record = PreprocessedCase(
        case_id=case.case_id,
        dataset=case.dataset,
        center=case.center,
        original=geometry,
        crop_box=box,
        shape_after_crop=shape_after_crop,
        spacing_after_resampling=effective_spacing(geometry, shape_after_crop, shape_pp),
        shape_after_resampling=shape_pp,
        source_files=_source_files(case),
        plan_fingerprint=plan_hash or plan_fingerprint(plan),
    )
    save_json(record, case_dir / f"{case.case_id}.json")
    return npz


def _run_job(job: _Job) -> tuple[Path, bool]:
    """Preprocess one case unless it is up to date; returns (npz path, whether it was skipped)."""
    if is_up_to_date(job.case, job.out_dir, job.plan_hash):
        return job.out_dir / f"{job.case.case_id}.npz", True
    return preprocess_case(job.case, job.out_dir, job.plan, job.plan_hash, job.ignore_label), False


def run_preprocessing(
    dataset_dirs: list[Path], out_dir: Path, plan: Plan, num_workers: int = 1, fingerprint_path: Path | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Preprocess every training case of ``dataset_dirs`` into ``out_dir``.

    Writes ``out_dir/plans.json``, ``out_dir/fingerprint.json`` (copied from ``fingerprint_path``
    when given), and per dataset ``out_dir/<dataset>/dataset.json`` (a copy) with one
    ``<case>.npz`` + ``<case>.json`` per case. Cases already preprocessed with the same plan
    from unchanged sources are skipped, so an interrupted run can simply be rerun.

    ``out_dir`` must be new, empty or a preprocessed folder (``check_preprocessed_folder``): one made with
    another plan is refused unless ``overwrite``, which then removes the cases of the other plan
    (``remove_other_plan_cases``) and nothing else of the folder.

    Returns:
        The ``.npz`` paths of all cases, in dataset then case order.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raw, plan = tiny_planned_dataset(tmp, cases=2)
        >>> [p.relative_to(tmp).as_posix() for p in run_preprocessing([raw], tmp / "pre", plan)]
        ['pre/center1/c1_000.npz', 'pre/center1/c1_001.npz']
        >>> sorted(p.name for p in (tmp / "pre").iterdir())
        ['center1', 'plans.json']
        >>> shutil.rmtree(tmp)
    """
    out_dir = Path(out_dir)
    check_preprocessed_folder(out_dir, plan, [Path(d) for d in dataset_dirs], overwrite)
    plan_hash = plan_fingerprint(plan)
    if overwrite:
        remove_other_plan_cases(out_dir, plan_hash)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_json(plan, out_dir / PLANS_FILE)
    if fingerprint_path is not None and Path(fingerprint_path).resolve() != (out_dir / FINGERPRINT_FILE).resolve():
        save_json(load_fingerprint(fingerprint_path), out_dir / FINGERPRINT_FILE)
    jobs: list[_Job] = []
    for dataset_dir in dataset_dirs:
        dataset_dir = Path(dataset_dir)
        cases = list_cases(dataset_dir, "Tr")
        if not cases:
            raise ValueError(f"{dataset_dir / 'imagesTr'}: no images found")
        case_dir = out_dir / dataset_dir.resolve().name
        case_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset_dir / "dataset.json", case_dir / "dataset.json")
        ignore_label = read_dataset_json(dataset_dir / "dataset.json")[0].ignore_label  # kept in the labels
        jobs += [_Job(case, case_dir, plan, plan_hash, ignore_label) for case in cases]
    results = parallel_map(_run_job, jobs, num_workers, desc="preprocess")
    skipped = sum(1 for _, was_skipped in results if was_skipped)
    logger.info("%d case(s) preprocessed, %d already up to date", len(results) - skipped, skipped)
    return [path for path, _ in results]


def _plan_differences(old: dict, new: dict) -> str:
    """``"batch_size 12 -> 10, target_spacing ..."``: the top-level fields of two plans that differ."""
    fields = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    shown = [f"{key} {old.get(key)} -> {new.get(key)}" if len(str(old.get(key))) + len(str(new.get(key))) < 60
             else key for key in fields[:4]]
    return ", ".join(shown) + (" ..." if len(fields) > 4 else "")


def check_preprocessed_folder(out_dir: Path, plan: Plan | None, dataset_dirs: Sequence[Path] = (),
                              overwrite: bool = False) -> None:
    """Refuse an output folder that preprocessing must not write into; nothing is written.

    Refused (``OutputConflictError``/``ValueError`` naming the folder and what to do): a raw input folder, a
    folder inside one, or one whose ``<dataset>`` subfolder would be an input; a non-empty folder without
    ``plans.json`` (not a preprocessed folder; a lone ``fingerprint.json`` of a run stopped before planning
    is accepted); and, unless ``overwrite``, a preprocessed folder whose ``plans.json`` holds another plan
    (its cases would not match the new one). ``plan`` None skips that last check (before planning).

    Example:
        >>> import tempfile
        >>> from lgeseg.planning import small_plan
        >>> tmp = Path(tempfile.mkdtemp())
        >>> save_json(small_plan(), tmp / "pre" / "plans.json")
        >>> check_preprocessed_folder(tmp / "pre", small_plan())  # the same plan: a rerun may continue
        >>> check_preprocessed_folder(tmp / "pre", small_plan(batch_size=7))
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../plans.json: the preprocessed folder was made with another plan ...
        >>> shutil.rmtree(tmp)
    """
    out_dir = Path(out_dir)
    out = out_dir.resolve()
    for dataset_dir in dataset_dirs:
        inp = Path(dataset_dir).resolve()
        if out == inp or inp in out.parents or out / inp.name == inp:
            raise ValueError(f"{out_dir}: the preprocessed folder must not be the raw dataset {dataset_dir}, inside "
                             "it, or its parent (inputs are never overwritten): choose another output folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputConflictError(f"{out_dir}: exists and is a file; the preprocessed output must be a folder")
    plans = out_dir / PLANS_FILE
    if not plans.is_file():
        present = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
        others = [name for name in present if name != FINGERPRINT_FILE]
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise OutputConflictError(f"{out_dir}: not a preprocessed folder (no plans.json; it holds {shown}); "
                                      "choose a new or empty output folder")
        return
    if plan is None:
        return
    old, wanted = load_json(plans), json.loads(json.dumps(plan.to_dict()))  # JSON lists, as in the file
    if old == wanted or overwrite:
        return
    difference = _plan_differences(old, wanted) if isinstance(old, dict) else "not a plan"
    raise OutputConflictError(f"{plans}: the preprocessed folder was made with another plan ({difference}); its "
                              f"cases would not match the new plan: use --overwrite to replace its preprocessed data, "
                              f"--plans-from {out_dir} to keep its plan, or choose another output folder")


def remove_other_plan_cases(out_dir: Path, plan_hash: str) -> list[Path]:
    """Delete the preprocessed cases of ``out_dir`` made with a plan other than ``plan_hash``; returns them.

    Only lgeseg's own files go: in dataset subfolders (those with a ``dataset.json``), a ``<case>.json``
    that reads as a preprocessed case record with another ``plan_fingerprint``, and its ``<case>.npz``.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raw, plan = tiny_planned_dataset(tmp)
        >>> _ = run_preprocessing([raw], tmp / "pre", plan)
        >>> [p.name for p in remove_other_plan_cases(tmp / "pre", plan_hash="another plan")]
        ['c1_000.json', 'c1_000.npz']
        >>> shutil.rmtree(tmp)
    """
    out_dir = Path(out_dir)
    removed: list[Path] = []
    if not out_dir.is_dir():
        return removed
    for folder in sorted(p for p in out_dir.iterdir() if p.is_dir() and (p / "dataset.json").is_file()):
        for record_path in sorted(folder.glob("*.json")):
            if record_path.name == "dataset.json" or record_path.name.startswith("."):
                continue
            try:
                record = PreprocessedCase.from_dict(load_json(record_path))
            except (ValueError, TypeError, KeyError):
                continue  # not a case record of lgeseg's: not ours to remove
            if record.plan_fingerprint == plan_hash:
                continue
            for path in (record_path, record_path.with_suffix(".npz")):  # the record first: an npz alone is unused
                if path.is_file():
                    path.unlink()
                    removed.append(path)
    if removed:
        logger.info("%s: removed %d file(s) of cases preprocessed with another plan", out_dir, len(removed))
    return removed


def load_preprocessed(pre_dir: Path, datasets: list[str] | None = None) -> list[tuple[PreprocessedCase, Path]]:
    """List the preprocessed cases in ``pre_dir`` (optionally only the named dataset subfolders).

    Returns:
        (record, ``.npz`` path) per case, sorted by dataset then case id. Raises
        ``FileNotFoundError`` naming a missing dataset folder or a record without its ``.npz``.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raw, plan = tiny_planned_dataset(tmp, cases=2)
        >>> _ = run_preprocessing([raw], tmp / "pre", plan)
        >>> record, npz = load_preprocessed(tmp / "pre")[0]
        >>> record.case_id, record.dataset, record.original.shape, npz.name
        ('c1_000', 'center1', (6, 32, 32), 'c1_000.npz')
        >>> shutil.rmtree(tmp)
    """
    pre_dir = Path(pre_dir)
    if not pre_dir.is_dir():
        raise FileNotFoundError(f"{pre_dir}: preprocessed folder not found")
    if datasets is None:
        folders = sorted(p for p in pre_dir.iterdir() if p.is_dir() and (p / "dataset.json").is_file())
    else:
        folders = [pre_dir / name for name in datasets]
    result: list[tuple[PreprocessedCase, Path]] = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: dataset not preprocessed (folder missing in {pre_dir})")
        for record_path in sorted(folder.glob("*.json")):
            if record_path.name == "dataset.json" or record_path.name.startswith("."):
                continue
            npz = record_path.with_suffix(".npz")
            if not npz.is_file():
                raise FileNotFoundError(f"{npz}: missing beside {record_path.name}; rerun preprocessing")
            result.append((PreprocessedCase.from_dict(load_json(record_path)), npz))
    return result


def load_case_arrays(npz_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a preprocessed case: (image float32 (C, z, y, x), label uint8 (z, y, x) or None).

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raw, plan = tiny_planned_dataset(tmp)
        >>> npz = run_preprocessing([raw], tmp / "pre", plan)[0]
        >>> image, label = load_case_arrays(npz)
        >>> image.dtype, image.ndim, label.dtype, sorted(np.unique(label).tolist())
        (dtype('float32'), 4, dtype('uint8'), [0, 1, 2])
        >>> shutil.rmtree(tmp)
    """
    with np.load(npz_path) as data:
        image = data["image"]
        label = data["label"] if "label" in data.files else None
    return image, label


__all__ = ["check_preprocessed_folder", "is_up_to_date", "load_case_arrays", "load_preprocessed", "preprocess_case",
           "remove_other_plan_cases", "run_preprocessing"]
