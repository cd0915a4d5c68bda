"""Evaluation of predicted label maps against references: 3D Dice, HD95, volumes, clinical indices.

Per case and per structure. The structures come from the ``labels`` of a dataset.json (every
non-background label; an nnU-Net region, a list of values, is scored as their union); without one,
lgeseg's labels: blood pool = label 1, myocardium = label 2. Whenever label 1 is named as the blood pool
and label 2 as the myocardium (``blood_pool``, ``LV_bloodpool``...), the whole LV (1 and 2) is scored too:

* ``dice``: the paper's Eq. 1, 2|X∩Y| / (|X| + |Y|), over the whole 3D volume.
* ``hd95_mm``: 95th-percentile symmetric Hausdorff distance between the 3D surfaces, in mm
  (the larger of the two directed 95th percentiles, as in MedPy and MONAI), using the voxel spacing.
* ``abs_volume_diff_ml``: |V_pred - V_ref| in mL.
* Clinical (labels 1 and 2 named as blood pool and myocardium, as for the whole LV):
  LV blood-pool volume (mL) and myocardial mass (g, 1.05 g/mL) for
  prediction and reference.

Empty structures (documented convention, also stated in ``summary.json``):

* prediction and reference both empty: Dice 1, HD95 0 mm (nothing to disagree on); counted as
  ``both_empty`` in the summary.
* exactly one empty: Dice 0 and HD95 undefined (NaN in ``metrics.csv``); the HD95 statistics
  leave such cases out and the summary counts them as ``hd95_undefined``, so no mean is ever NaN
  without saying so.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lgeseg.core.atomic import atomic_output
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import save_json
from lgeseg.datasets.layout import read_evaluation_labels
from lgeseg.files import io

logger = logging.getLogger(__name__)

#: Structures evaluated without a dataset.json: name -> label values that make it up.
STRUCTURES: dict[str, tuple[int, ...]] = {"blood_pool": (1,), "myocardium": (2,), "lv": (1, 2)}
#: Myocardial tissue density, g/mL.
MYOCARDIUM_DENSITY_G_PER_ML: float = 1.05
#: The empty-structure convention, copied into summary.json.
EMPTY_CONVENTION: str = (
    "both empty: Dice 1, HD95 0 mm (counted as both_empty); one empty: Dice 0, HD95 undefined "
    "(NaN in metrics.csv, left out of HD95 statistics, counted as hd95_undefined)"
)


def structures_from_labels(labels: dict[str, int | Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """The structures to score for a dataset.json ``labels`` field.

    Args:
        labels: label name -> value, or -> list of values (an nnU-Net region, scored as the union);
            None for lgeseg's labels (``STRUCTURES``).

    Returns:
        name -> label values, one entry per non-background label in the order given, plus ``lv``
        (1, 2) when label 1 is named as the blood pool and label 2 as the myocardium (``blood_pool`` /
        ``myocardium``, or other datasets' spellings such as ``LV_bloodpool`` / ``LV_myocardium``).

    Example:
        >>> structures_from_labels({"background": 0, "blood_pool": 1, "myocardium": 2})
        {'blood_pool': (1,), 'myocardium': (2,), 'lv': (1, 2)}
        >>> structures_from_labels({"background": 0, "LV_bloodpool": 1, "LV_myocardium": 2})  # MyoPS's names
        {'LV_bloodpool': (1,), 'LV_myocardium': (2,), 'lv': (1, 2)}
        >>> structures_from_labels({"background": 0, "scar": 1, "heart": [1, 2]})  # a region: the union
        {'scar': (1,), 'heart': (1, 2)}
    """
    if labels is None:
        return dict(STRUCTURES)
    structures = {}
    for name, value in labels.items():
        values = (int(value),) if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
        if values != (0,):
            structures[str(name)] = values
    if not structures:
        raise ValueError(f"labels {labels} declare no structure besides background (0)")
    if _names_blood_pool_and_myocardium(structures) and "lv" not in structures:
        structures["lv"] = (1, 2)
    return structures


def _names_blood_pool_and_myocardium(structures: dict[str, tuple[int, ...]]) -> bool:
    """True when label 1 is named as the LV blood pool and label 2 as the myocardium, spelled as datasets do
    (``blood_pool``, ``LV_bloodpool``, ``LV cavity``; ``myocardium``, ``LV_myocardium``, ``MYO``)."""
    names = {values: re.sub(r"[^a-z]", "", name.lower()) for name, values in structures.items()}
    pool, myocardium = names.get((1,), ""), names.get((2,), "")
    return any(word in pool for word in ("blood", "pool", "cavity")) and "myo" in myocardium


def _mask(label_map: np.ndarray, label: int | Sequence[int]) -> np.ndarray:
    labels = (label,) if isinstance(label, (int, np.integer)) else tuple(label)
    return np.isin(label_map, labels)


def dice(pred: np.ndarray, ref: np.ndarray, label: int | Sequence[int], empty: float = 1.0) -> float:
    """3D Dice coefficient (paper Eq. 1) of one structure: lgeseg's one Dice.

    Args:
        pred, ref: label maps (z, y, x) of equal shape.
        label: label value, or several values taken together (e.g. (1, 2) for the whole LV).
        empty: the value when the structure is absent from both. 1.0 (default; evaluation's
            convention, docs/evaluation.md): a correct "nothing here". Training validation passes NaN
            so that a case without the structure is left out of the per-structure mean.

    Returns:
        2|P∩R| / (|P| + |R|) in [0, 1]; ``empty`` when both are empty.

    Example:
        >>> ref = np.zeros((1, 2, 4), np.uint8); ref[0, :, :2] = 1
        >>> pred = np.zeros_like(ref); pred[0, 0, :2] = 1
        >>> round(dice(pred, ref, 1), 3), dice(pred, ref, 2), dice(pred, ref, 2, empty=float("nan"))
        (0.667, 1.0, nan)
    """
    if np.shape(pred) != np.shape(ref):
        raise ValueError(f"prediction shape {np.shape(pred)} != reference shape {np.shape(ref)}")
    p, r = _mask(pred, label), _mask(ref, label)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(r))
    if total == 0:
        return empty
    return 2.0 * int(np.count_nonzero(p & r)) / total


def without_ignored(pred: np.ndarray, ref: np.ndarray, ignore_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``ref`` (z, y, x) with background in both where ``ref`` holds ``ignore_label``.

    An ignore label (nnU-Net's; voxels of unknown class) then adds nothing to any Dice: neither a hit, a
    miss nor a false positive. ``ignore_label`` None (or absent from ``ref``) returns the inputs themselves.

    Example:
        >>> ref = np.array([[[1, 1, 3, 3]]], np.uint8)  # 3: ignored
        >>> pred = np.array([[[1, 1, 1, 2]]], np.uint8)
        >>> scored, reference = without_ignored(pred, ref, 3)
        >>> dice(scored, reference, 1), dice(scored, reference, 2), round(dice(pred, ref, 1), 3)  # unmasked: 0.8
        (1.0, 1.0, 0.8)
    """
    if ignore_label is None:
        return pred, ref
    ignored = np.asarray(ref) == ignore_label
    if not ignored.any():
        return pred, ref
    return np.where(ignored, 0, pred).astype(np.asarray(pred).dtype), np.where(ignored, 0, ref).astype(ref.dtype)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face neighbour outside it (the image border counts as outside)."""
    from scipy import ndimage  # deferred: postprocessing imports dice, and lgeseg_predict starts without SciPy

    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, structure=ndimage.generate_binary_structure(3, 1))
    return (padded & ~eroded)[1:-1, 1:-1, 1:-1]


def hd95(pred_mask: np.ndarray, ref_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance between two boolean masks (z, y, x), in mm.

    Args:
        pred_mask, ref_mask: boolean (z, y, x) masks of equal shape.
        spacing: voxel size, mm, (z, y, x).

    Returns:
        max(P95 of pred-surface -> ref-surface distances, P95 of ref -> pred); 0.0 when both are
        empty, NaN when exactly one is empty.

    Example:
        >>> ref = np.zeros((1, 1, 10), bool); ref[0, 0, 2] = True
        >>> hd95(np.roll(ref, 2, axis=2), ref, spacing=(8.0, 1.0, 1.5))  # shifted by 2 voxels of 1.5 mm
        3.0
    """
    p_any, r_any = bool(pred_mask.any()), bool(ref_mask.any())
    if not p_any and not r_any:
        return 0.0
    if not p_any or not r_any:
        return math.nan
    from scipy import ndimage  # deferred: postprocessing imports dice, and lgeseg_predict starts without SciPy

    # Distances only involve the two surfaces: crop to their joint bounding box (exact, and cheap).
    nonzero = np.argwhere(pred_mask | ref_mask)
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(nonzero.min(0), nonzero.max(0), strict=True))
    ps, rs = _surface(pred_mask[box]), _surface(ref_mask[box])
    to_ref = ndimage.distance_transform_edt(~rs, sampling=spacing)[ps]
    to_pred = ndimage.distance_transform_edt(~ps, sampling=spacing)[rs]
    return float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))


def evaluate_case(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                  structures: dict[str, tuple[int, ...]] | None = None) -> dict[str, float]:
    """All metrics of one case.

    Args:
        pred, ref: uint8 label maps (z, y, x) on the same grid.
        spacing: mm, (z, y, x).
        structures: name -> label values (``structures_from_labels``); None: ``STRUCTURES``.

    Returns:
        A flat dict: ``dice_<structure>``, ``hd95_mm_<structure>``, ``abs_volume_diff_ml_<structure>``
        for each structure, plus ``bp_volume_{pred,ref}_ml`` and ``myo_mass_{pred,ref}_g`` when the
        structures are lgeseg's (label 1 blood pool, label 2 myocardium).

    Example:
        >>> ref = np.zeros((1, 4, 4), np.uint8); ref[0, 1:3, 1:3] = 1; ref[0, 0, :] = 2
        >>> pred = ref.copy(); pred[0, 0, 0] = 0  # one myocardium voxel missed
        >>> row = evaluate_case(pred, ref, spacing=(8.0, 1.25, 1.25))
        >>> round(row["dice_blood_pool"], 3), round(row["dice_myocardium"], 3), round(row["dice_lv"], 3)
        (1.0, 0.857, 0.933)
        >>> round(row["bp_volume_ref_ml"], 3), round(row["myo_mass_ref_g"], 3)  # 4 voxels of 12.5 mm³
        (0.05, 0.053)
    """
    if np.shape(pred) != np.shape(ref):
        raise ValueError(f"prediction shape {np.shape(pred)} != reference shape {np.shape(ref)}")
    structures = STRUCTURES if structures is None else structures
    voxel_ml = float(np.prod(spacing)) / 1000.0
    row: dict[str, float] = {}
    for name, labels in structures.items():
        p, r = _mask(pred, labels), _mask(ref, labels)
        row[f"dice_{name}"] = dice(pred, ref, labels)
        row[f"hd95_mm_{name}"] = hd95(p, r, spacing)
        row[f"abs_volume_diff_ml_{name}"] = abs(int(np.count_nonzero(p)) - int(np.count_nonzero(r))) * voxel_ml
    if not _names_blood_pool_and_myocardium(structures):
        return row
    for who, array in (("pred", pred), ("ref", ref)):
        row[f"bp_volume_{who}_ml"] = int(np.count_nonzero(array == 1)) * voxel_ml
        row[f"myo_mass_{who}_g"] = int(np.count_nonzero(array == 2)) * voxel_ml * MYOCARDIUM_DENSITY_G_PER_ML
    return row


def _label_files(folder: Path) -> dict[str, Path]:
    return {io.strip_ending(p): p for p in sorted(folder.iterdir())
            if io.file_ending(p) and not p.name.startswith(".") and p.is_file()}


def pair_cases(pred_dir: str | Path, ref_dir: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair prediction files with reference files by case id.

    Args:
        pred_dir: folder of ``<case>.<ending>`` predictions.
        ref_dir: folder of ``<case>.<ending>`` references, or a raw dataset whose ``labelsTr``
            (then ``labelsTs``) holds them.

    Returns:
        ([(case_id, pred_path, ref_path), ...] sorted by case, [case ids with a reference but no
        prediction]). Raises ``ValueError`` naming predictions that have no reference.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> from lgeseg.core.records import CaseGeometry
        >>> geometry = CaseGeometry((1, 2, 2), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> for path in ("pred/c1.nii.gz", "ref/c1.nii.gz", "ref/c2.nii.gz"):
        ...     io.write_label(tmp / path, np.ones((1, 2, 2)), geometry)
        >>> pairs, unpredicted = pair_cases(tmp / "pred", tmp / "ref")
        >>> [(case, p.parent.name, r.parent.name) for case, p, r in pairs], unpredicted
        ([('c1', 'pred', 'ref')], ['c2'])
        >>> import shutil; shutil.rmtree(tmp)
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    for folder in (pred_dir, ref_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    preds = _label_files(pred_dir)
    if not preds:
        raise FileNotFoundError(f"{pred_dir}: no predictions found (expected <case>.nii.gz files)")
    refs = _label_files(ref_dir)
    for sub in ("labelsTr", "labelsTs"):
        if not refs and (ref_dir / sub).is_dir():
            refs = _label_files(ref_dir / sub)
    missing = sorted(set(preds) - set(refs))
    if missing:
        raise ValueError(f"{ref_dir}: no reference for prediction(s) {', '.join(missing)} "
                         f"(expected {ref_dir}/<case>.nii.gz or {ref_dir}/labelsTr/<case>.nii.gz)")
    return [(case, preds[case], refs[case]) for case in sorted(preds)], sorted(set(refs) - set(preds))


def _stats(values: list[float]) -> dict[str, float | int]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"mean": None, "std": None, "median": None, "n": 0}  # type: ignore[dict-item]
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)), "median": float(np.median(finite)),
            "n": len(finite)}


def summarize(rows: list[dict[str, Any]], structures: dict[str, tuple[int, ...]] | None = None) -> dict[str, Any]:
    """Summary of per-case rows (as from ``evaluate_case`` plus ``case``): mean/std/median per metric.

    Args:
        rows: per-case metric rows.
        structures: the structures the rows hold (None: ``STRUCTURES``).

    Returns a dict with ``n_cases``, ``structures`` (per structure: its ``labels``, dice, hd95_mm,
    abs_volume_diff_ml statistics and the empty counts), ``clinical`` (empty unless the labels are
    lgeseg's) and ``empty_convention``.

    Example:
        >>> ref = np.zeros((1, 4, 4), np.uint8); ref[0, 1:3, 1:3] = 1; ref[0, 0, :] = 2
        >>> rows = [{**evaluate_case(pred, ref, (8.0, 1.25, 1.25)), "empty_blood_pool": "", "empty_myocardium": "",
        ...          "empty_lv": ""} for pred in (ref, np.where(ref == 2, 0, ref))]
        >>> summary = summarize(rows)
        >>> summary["n_cases"], summary["structures"]["myocardium"]["dice"]
        (2, {'mean': 0.5, 'std': 0.5, 'median': 0.5, 'n': 2})
    """
    structures = STRUCTURES if structures is None else structures
    result: dict[str, Any] = {}
    for name, labels in structures.items():
        hd = [r[f"hd95_mm_{name}"] for r in rows]
        result[name] = {
            "labels": list(labels),
            "dice": _stats([r[f"dice_{name}"] for r in rows]),
            "hd95_mm": {**_stats(hd), "hd95_undefined": sum(math.isnan(v) for v in hd)},
            "abs_volume_diff_ml": _stats([r[f"abs_volume_diff_ml_{name}"] for r in rows]),
            "both_empty": sum(bool(r[f"empty_{name}"] == "both") for r in rows),
            "pred_empty_only": sum(bool(r[f"empty_{name}"] == "pred") for r in rows),
            "ref_empty_only": sum(bool(r[f"empty_{name}"] == "ref") for r in rows),
        }
    clinical_keys = ("bp_volume_pred_ml", "bp_volume_ref_ml", "myo_mass_pred_g", "myo_mass_ref_g")
    clinical = ({key: _stats([r[key] for r in rows]) for key in clinical_keys}
                if _names_blood_pool_and_myocardium(structures) else {})
    return {"n_cases": len(rows), "structures": result, "clinical": clinical,
            "empty_convention": EMPTY_CONVENTION}


def _empty_flag(pred: np.ndarray, ref: np.ndarray, labels: tuple[int, ...]) -> str:
    p, r = bool(_mask(pred, labels).any()), bool(_mask(ref, labels).any())
    return "both" if not (p or r) else "pred" if not p else "ref" if not r else ""


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def find_labels(pred_dir: str | Path, ref_dir: str | Path,
                dataset_json: str | Path | None = None) -> tuple[dict[str, int | list[int]] | None, Path | None]:
    """The labels to score and the dataset.json they come from.

    Looks at ``dataset_json`` when given, else ``ref_dir/dataset.json`` (a raw dataset), else
    ``pred_dir/dataset.json`` (written by ``lgeseg_predict --save-probabilities`` and by nnU-Net);
    returns ``(None, None)`` when none exists (lgeseg's labels are then scored).

    Example:
        >>> import json, tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> find_labels(tmp / "pred", tmp / "ref")  # no dataset.json: lgeseg's labels are scored
        (None, None)
        >>> (tmp / "ref").mkdir()
        >>> _ = (tmp / "ref" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "scar": 1}}))
        >>> labels, path = find_labels(tmp / "pred", tmp / "ref")
        >>> labels, path.relative_to(tmp)
        ({'background': 0, 'scar': 1}, PosixPath('ref/dataset.json'))
        >>> import shutil; shutil.rmtree(tmp)
    """
    candidates = [Path(dataset_json)] if dataset_json else [Path(ref_dir) / "dataset.json",
                                                           Path(pred_dir) / "dataset.json"]
    for path in candidates:
        if path.is_file() or dataset_json:
            return read_evaluation_labels(path), path
    return None, None


def _undeclared(pred: np.ndarray, ref: np.ndarray, structures: dict[str, tuple[int, ...]]) -> set[int]:
    declared = {0, *(v for values in structures.values() for v in values)}
    return {int(v) for v in np.union1d(np.unique(pred), np.unique(ref))} - declared


#: The files ``evaluate_folders`` writes into its output folder.
EVALUATION_FILES: tuple[str, ...] = ("metrics.csv", "summary.json")


def check_evaluation_output(pred_dir: str | Path, ref_dir: str | Path, out_dir: str | Path,
                            overwrite: bool = True) -> None:
    """Refuse an output folder that is (or is inside) the predictions or the references, or, unless
    ``overwrite``, that already holds ``metrics.csv`` or ``summary.json``. Nothing is written.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> check_evaluation_output(tmp / "pred", tmp / "ref", tmp / "eval")  # passes: returns None
        >>> check_evaluation_output(tmp / "pred", tmp / "ref", tmp / "pred")
        Traceback (most recent call last):
        ValueError: ...pred: the output folder must not be the predictions folder ... or inside it; ...
        >>> _ = (tmp / "eval").mkdir(), (tmp / "eval" / "summary.json").write_text("{}")
        >>> check_evaluation_output(tmp / "pred", tmp / "ref", tmp / "eval", overwrite=False)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../summary.json: already exists; use --overwrite to replace it, ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    out = Path(out_dir).resolve()
    for role, folder in (("predictions", Path(pred_dir)), ("references", Path(ref_dir))):
        inp = folder.resolve()
        if out == inp or inp in out.parents:
            raise ValueError(f"{out_dir}: the output folder must not be the {role} folder ({folder}) or inside it; "
                             "choose another output folder")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise OutputConflictError(f"{out_dir}: exists and is a file; the output must be a folder")
    existing = [Path(out_dir) / name for name in EVALUATION_FILES if (Path(out_dir) / name).exists()]
    if existing and not overwrite:
        raise OutputConflictError(f"{existing[-1]}: already exists; use --overwrite to replace it, or choose another "
                                  "output folder")


def evaluate_folders(pred_dir: str | Path, ref_dir: str | Path, out_dir: str | Path,
                     labels: dict[str, int | Sequence[int]] | None = None, overwrite: bool = True) -> dict[str, Any]:
    """Evaluate every prediction in ``pred_dir`` against its reference; write the results.

    Args:
        pred_dir: folder of predicted label maps ``<case>.nii.gz`` (any supported ending).
        ref_dir: folder of reference label maps, or a raw dataset with ``labelsTr``/``labelsTs``.
        out_dir: receives ``metrics.csv`` (one row per case) and ``summary.json``.
        labels: the ``labels`` of a dataset.json (name -> value or list of values); None: lgeseg's.
        overwrite: replace an existing ``metrics.csv``/``summary.json`` (the default, for the experiment
            runners that score into their folders again); False refuses them (``lgeseg_evaluate`` without
            ``--overwrite``). ``out_dir`` is never the predictions or references folder, nor inside them.

    Returns:
        The summary dict (as written to ``summary.json``; ``undeclared_label_values`` lists values
        found in a label map but absent from ``labels``, which are not scored, with a warning).
        Raises ``ValueError`` naming the case when a prediction's geometry (shape, spacing, origin,
        direction) differs from its reference.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> from lgeseg.core.records import CaseGeometry
        >>> geometry = CaseGeometry((1, 4, 4), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> ref = np.zeros((1, 4, 4), np.uint8); ref[0, 1:3, 1:3] = 1; ref[0, 0, :] = 2
        >>> pred = ref.copy(); pred[0, 0, 0] = 0
        >>> io.write_label(tmp / "ref" / "c1.nii.gz", ref, geometry)
        >>> io.write_label(tmp / "pred" / "c1.nii.gz", pred, geometry)
        >>> summary = evaluate_folders(tmp / "pred", tmp / "ref", tmp / "eval")
        >>> summary["n_cases"], round(summary["structures"]["myocardium"]["dice"]["mean"], 3)
        (1, 0.857)
        >>> sorted(p.name for p in (tmp / "eval").iterdir())
        ['metrics.csv', 'summary.json']
        >>> import shutil; shutil.rmtree(tmp)
    """
    check_evaluation_output(pred_dir, ref_dir, out_dir, overwrite)
    structures = structures_from_labels(labels)
    undeclared: set[int] = set()
    pairs, unpredicted = pair_cases(pred_dir, ref_dir)
    if unpredicted:
        logger.warning("%d reference(s) have no prediction and are not evaluated: %s",
                       len(unpredicted), ", ".join(unpredicted))
    rows: list[dict[str, Any]] = []
    for case, pred_path, ref_path in tqdm(pairs, desc="evaluate", unit="case"):
        pred, pred_geometry = io.read_label(pred_path)
        ref, ref_geometry = io.read_label(ref_path)
        problems = io.geometry_mismatch(pred_geometry, ref_geometry)
        if problems:
            raise ValueError(f"case {case}: prediction {pred_path} and reference {ref_path} are on different "
                             f"grids: {'; '.join(problems)}")
        row: dict[str, Any] = {"case": case, **evaluate_case(pred, ref, ref_geometry.spacing, structures)}
        row.update({f"empty_{name}": _empty_flag(pred, ref, values) for name, values in structures.items()})
        rows.append(row)
        undeclared |= _undeclared(pred, ref, structures)
    if undeclared:
        logger.warning("label value(s) %s occur in the label maps but not in the labels %s; they are not scored",
                       sorted(undeclared), labels if labels is not None else "of lgeseg (1 blood pool, 2 myocardium)")
    summary = summarize(rows, structures)
    summary["references_without_prediction"] = unpredicted
    summary["undeclared_label_values"] = sorted(undeclared)
    out_dir = Path(out_dir)
    _write_csv(out_dir / "metrics.csv", rows)
    save_json(summary, out_dir / "summary.json")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary: one line per structure, mean ± std of Dice, HD95, |ΔV|.

    Example:
        >>> ref = np.zeros((1, 4, 4), np.uint8); ref[0, 1:3, 1:3] = 1; ref[0, 0, :] = 2
        >>> row = {**evaluate_case(ref, ref, (8.0, 1.25, 1.25)), "empty_blood_pool": "", "empty_myocardium": "",
        ...        "empty_lv": ""}
        >>> print(format_table(summarize([row])).splitlines()[2])
        myocardium     1.000 ± 0.000     0.00 ± 0.00     0.00 ± 0.00  0/0/0
    """

    def cell(stats: dict[str, Any], digits: int) -> str:
        return "n/a" if stats["mean"] is None else f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"

    lines = [f"{'structure':<12} {'Dice':>15} {'HD95 (mm)':>15} {'|dV| (mL)':>15}  empty (both/pred/ref)"]
    for name, s in summary["structures"].items():
        lines.append(f"{name:<12} {cell(s['dice'], 3):>15} {cell(s['hd95_mm'], 2):>15} "
                     f"{cell(s['abs_volume_diff_ml'], 2):>15}  "
                     f"{s['both_empty']}/{s['pred_empty_only']}/{s['ref_empty_only']}")
    c = summary["clinical"]
    if not c:
        lines.append(f"{summary['n_cases']} case(s). Empty structures: {summary['empty_convention']}.")
        return "\n".join(lines)
    lines.append(f"LV blood-pool volume (mL): pred {cell(c['bp_volume_pred_ml'], 1)}, "
                 f"ref {cell(c['bp_volume_ref_ml'], 1)}")
    lines.append(f"Myocardial mass (g):       pred {cell(c['myo_mass_pred_g'], 1)}, "
                 f"ref {cell(c['myo_mass_ref_g'], 1)}")
    lines.append(f"{summary['n_cases']} case(s). Empty structures: {summary['empty_convention']}.")
    return "\n".join(lines)
