"""Per-case quality flags of a prediction: which cases of a new center a person should check by eye.

Pure NumPy (no torch, no SciPy). For each predicted case ``assess_segmentation`` measures:

- **mirror disagreement**: how much the flipped test-time passes disagree with their average
  (``MirrorAgreement``, filled by ``sliding_window.predict_slices``); NaN without mirroring;
- **implausibility checks** on the label map: no foreground at all; myocardium missing on a slice
  where the blood pool is found; a wall thinner than ``MIN_WALL_MM`` over most of the ring; a
  blood pool that the myocardium does not enclose on most slices (a bright blob is not a ventricle);
  a blood-pool volume outside ``BLOOD_POOL_ML_RANGE`` or a myocardial volume outside
  ``MYOCARDIUM_ML_RANGE``; and an input image that is constant (all one value, e.g. all background),
  which no model can segment;
- one combined ``score`` (0 for a prediction that passes every check with flips that agree; higher
  is worse) and ``flagged`` (any check failed).

The wall-thickness and ring-closure measures of one slice are ``lgeseg.inference.ring``'s.
``lgeseg_predict`` writes the records to ``qc.csv`` and ``qc.json`` in its output folder
(``write_quality_report``); docs/inference.md documents the columns.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg.core.atomic import atomic_output
from lgeseg.inference.ring import MIN_WALL_MM, RING_GAP_MM, enclosed_fraction, thin_ring_samples

#: ``thin_wall`` is flagged when more than this fraction of the ring (blood-pool border samples) is thin.
THIN_RING_FRACTION = 0.5
#: Plausible LV blood-pool volume, mL (voxel count x voxel volume, gaps between slices included).
#: Upper bound: normal adult end-diastolic LV volumes by bSSFP CMR lie below ~250 mL (Kawel-Boehm et al.,
#: "Reference ranges for CMR in adults and children: 2020 update", J Cardiovasc Magn Reson 22:87, 2020)
#: and even severely dilated cardiomyopathies rarely exceed ~400 mL, so 500 mL is beyond any human LV.
#: Lower bound: the smallest adult end-systolic volumes of that review are ~20 mL; 10 mL leaves room for
#: LGE stacks that cover only part of the ventricle (myops_lge: 2-6 slices; its references hold 44-139 mL).
BLOOD_POOL_ML_RANGE = (10.0, 500.0)
#: Plausible LV myocardial volume, mL (myocardium incl. scar; mass = 1.05 g/mL x volume). Adult LV mass by
#: CMR lies within ~40-400 g in health and disease (Kawel-Boehm et al. 2020: normal 60-200 g; severe
#: hypertrophic cardiomyopathy rarely above ~400 g), i.e. ~38-381 mL. The range is generous: up to 500 mL
#: (525 g, beyond any reported human LV), and down to 5 mL for LGE stacks that cover a few slices only.
MYOCARDIUM_ML_RANGE = (5.0, 500.0)
#: A slice's blood pool counts as enclosed when at least this fraction of it lies inside the myocardium.
ENCLOSED_FRACTION = 0.5
#: ``blood_pool_not_enclosed`` is flagged when more than this fraction of the blood-pool slices with
#: myocardium are not enclosed (one open basal slice at the outflow tract is normal; most slices are rings).
NOT_ENCLOSED_SLICE_FRACTION = 0.5
#: A slice "has blood pool" when its blood pool covers at least this area (mm^2; a disc of ~8 mm).
MIN_BLOOD_POOL_MM2 = 50.0
#: Myocardium counts as missing on a slice when its area is below this fraction of the blood pool's.
MISSING_MYOCARDIUM_FRACTION = 0.1
#: ``mirror_unstable`` is flagged above this disagreement (the flipped passes' Dice with their average < 0.9).
MIRROR_DISAGREEMENT_LIMIT = 0.1

#: The quality report of a prediction folder: records as JSON (read back) and as a table (for people).
QUALITY_JSON_FILE = "qc.json"
QUALITY_CSV_FILE = "qc.csv"

#: Record fields in file order (qc.csv columns, qc.json keys).
COLUMNS = ("case_id", "flagged", "score", "reasons", "mirror_disagreement", "input_constant", "no_foreground",
           "blood_pool_ml", "myocardium_ml", "volume_implausible", "blood_pool_slices", "slices_missing_myocardium",
           "missing_myocardium", "thin_wall_fraction", "thin_wall", "mirror_unstable", "slices_not_enclosed",
           "blood_pool_not_enclosed")
#: Columns added after the first qc.json format, with the value an older record gets for them.
_LATER_COLUMNS: dict[str, Any] = {"slices_not_enclosed": 0, "blood_pool_not_enclosed": False}


class MirrorAgreement:
    """Accumulates, over the tiles of a case, how each mirrored pass agrees with the passes' average.

    For pass p (identity, y-, x-, yx-flip) and foreground class k, it sums |A_pk & E_k|, |A_pk| and
    |E_k|, where A_pk are the voxels that pass p labels k and E_k those the flip-averaged logits label k.
    Overlapping tiles (``--window sliding``) count a voxel once per tile that covers it.
    """

    def __init__(self) -> None:
        self.intersection: np.ndarray | None = None
        self.pass_size: np.ndarray | None = None
        self.average_size: np.ndarray | None = None

    def add(self, intersection: np.ndarray, pass_size: np.ndarray, average_size: np.ndarray) -> None:
        """Add counts of one batch of tiles: three int arrays of shape (passes, foreground classes)."""
        if self.intersection is None or self.pass_size is None or self.average_size is None:
            self.intersection, self.pass_size, self.average_size = (np.zeros_like(np.asarray(a, np.int64))
                                                                    for a in (intersection, pass_size, average_size))
        self.intersection += np.asarray(intersection, np.int64)
        self.pass_size += np.asarray(pass_size, np.int64)
        self.average_size += np.asarray(average_size, np.int64)

    def disagreement(self) -> float:
        """Mean over passes and foreground classes of 1 - Dice(pass, average), in [0, 1].

        A class that neither labels counts as agreement (Dice 1). NaN when nothing was added (no mirroring).
        """
        if self.intersection is None or self.pass_size is None or self.average_size is None:
            return math.nan
        total = self.pass_size + self.average_size
        dice = np.where(total > 0, 2.0 * self.intersection / np.maximum(total, 1), 1.0)
        return float(np.mean(1.0 - dice))


@dataclasses.dataclass(frozen=True)
class CaseQuality:
    """Quality record of one predicted case (one row of qc.csv; see docs/inference.md).

    Attributes:
        case_id: the case.
        flagged: any check below failed: check this case by eye.
        score: ``mirror_disagreement`` (0 when NaN) + missing-myocardium slices / blood-pool slices
            + ``thin_wall_fraction`` (0 when NaN) + not-enclosed slices / blood-pool slices + 1 for each
            of ``volume_implausible``, ``no_foreground``, ``input_constant``. 0 is best; higher is worse.
        reasons: names of the failed checks, e.g. ``("thin_wall", "volume_implausible")``.
        mirror_disagreement: mean 1 - Dice between each flipped pass and their average (NaN: no mirroring).
        input_constant: the input image holds a single value (e.g. all background).
        no_foreground: the prediction has neither blood pool nor myocardium.
        blood_pool_ml, myocardium_ml: predicted volumes, mL.
        volume_implausible: ``blood_pool_ml`` outside ``BLOOD_POOL_ML_RANGE`` or ``myocardium_ml`` outside
            ``MYOCARDIUM_ML_RANGE`` (only with foreground).
        blood_pool_slices: slices with at least ``MIN_BLOOD_POOL_MM2`` of blood pool.
        slices_missing_myocardium: of those, slices whose myocardium is under 10% of the blood pool's area.
        missing_myocardium: ``slices_missing_myocardium > 0``.
        thin_wall_fraction: fraction of blood-pool border voxels (slices with myocardium) whose wall is
            thinner than ``MIN_WALL_MM`` (a gap in the ring counts as thickness 0); NaN without such slices.
        thin_wall: ``thin_wall_fraction > THIN_RING_FRACTION``.
        mirror_unstable: ``mirror_disagreement > MIRROR_DISAGREEMENT_LIMIT``.
        slices_not_enclosed: blood-pool slices with myocardium whose blood pool the myocardium does not
            enclose (``enclosed_fraction`` < ``ENCLOSED_FRACTION``, gaps up to ``RING_GAP_MM`` bridged).
        blood_pool_not_enclosed: ``slices_not_enclosed`` > ``NOT_ENCLOSED_SLICE_FRACTION`` x those slices:
            the "ventricle" is a bright blob without a surrounding wall on most slices.
    """

    case_id: str
    flagged: bool
    score: float
    reasons: tuple[str, ...]
    mirror_disagreement: float
    input_constant: bool
    no_foreground: bool
    blood_pool_ml: float
    myocardium_ml: float
    volume_implausible: bool
    blood_pool_slices: int
    slices_missing_myocardium: int
    missing_myocardium: bool
    thin_wall_fraction: float
    thin_wall: bool
    mirror_unstable: bool
    slices_not_enclosed: int = 0
    blood_pool_not_enclosed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in ``COLUMNS`` order; NaN becomes None (JSON null)."""
        row = dataclasses.asdict(self)
        row["reasons"] = list(self.reasons)
        return {key: (None if isinstance(row[key], float) and math.isnan(row[key]) else row[key]) for key in COLUMNS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseQuality:
        """Inverse of ``to_dict`` (None -> NaN). Raises ``ValueError`` naming missing fields.

        Columns added to the report later (``_LATER_COLUMNS``) get their neutral value when absent, so a
        qc.json written by an older lgeseg is still read (and merged) by a rerun.
        """
        data = {**_LATER_COLUMNS, **data}
        missing = [key for key in COLUMNS if key not in data]
        if missing:
            raise ValueError(f"quality record {data.get('case_id', '?')!r}: missing field(s) {', '.join(missing)}")
        values = {key: data[key] for key in COLUMNS}
        for key in ("score", "mirror_disagreement", "blood_pool_ml", "myocardium_ml", "thin_wall_fraction"):
            values[key] = math.nan if values[key] is None else float(values[key])
        values["reasons"] = tuple(values["reasons"])
        return cls(**values)


def is_constant_image(image: np.ndarray) -> bool:
    """Whether any channel of ``image`` ((C, z, y, x) or (z, y, x)) holds a single finite value or none at all.

    Example:
        >>> is_constant_image(np.zeros((1, 2, 8, 8))), is_constant_image(np.arange(8.0).reshape(1, 2, 2, 2))
        (True, False)
    """
    array = np.asarray(image)
    channels = array.reshape(array.shape[0], -1) if array.ndim == 4 else array.reshape(1, -1)
    for channel in channels:
        finite = channel[np.isfinite(channel)]
        if finite.size == 0 or finite.min() == finite.max():
            return True
    return False


def _slice_checks(labels: np.ndarray, spacing: Sequence[float], blood_label: int,
                  myocardium_label: int) -> tuple[int, int, float, int]:
    """(blood-pool slices, slices missing myocardium, thin-wall fraction or NaN, slices not enclosed)."""
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    blood_slices = missing = thin = total = not_enclosed = 0
    for slice_labels in labels:
        blood, myocardium = slice_labels == blood_label, slice_labels == myocardium_label
        blood_area = blood.sum() * pixel_mm2
        if blood_area < MIN_BLOOD_POOL_MM2:
            continue
        blood_slices += 1
        if myocardium.sum() * pixel_mm2 < MISSING_MYOCARDIUM_FRACTION * blood_area:
            missing += 1
            continue
        slice_thin, slice_total = thin_ring_samples(blood, myocardium, spacing[1:])
        thin += slice_thin
        total += slice_total
        not_enclosed += enclosed_fraction(blood, myocardium, spacing[1:]) < ENCLOSED_FRACTION
    return blood_slices, missing, (thin / total if total else math.nan), not_enclosed


def assess_segmentation(labels: np.ndarray, spacing: Sequence[float], case_id: str = "case",
                        mirror_disagreement: float = math.nan, input_constant: bool = False,
                        blood_label: int = 1, myocardium_label: int = 2) -> CaseQuality:
    """Quality record of one predicted label map.

    Args:
        labels: (z, y, x) integer label map (slices along axis 0, short axis).
        spacing: (sz, sy, sx) voxel size, mm.
        case_id: the case's name in the record.
        mirror_disagreement: ``MirrorAgreement.disagreement()`` of the prediction, NaN without mirroring.
        input_constant: whether the input image was constant (``is_constant_image``).
        blood_label, myocardium_label: label values of the LV blood pool and myocardium.

    Returns:
        A ``CaseQuality`` with every check, the combined ``score`` and the ``flagged`` decision.

    Example:
        >>> yy, xx = np.mgrid[:32, :32]
        >>> r = np.hypot(yy - 16, xx - 16)
        >>> labels = np.stack([np.where(r < 6, 1, np.where(r < 10, 2, 0))] * 5)  # blood pool in a 6 mm ring
        >>> quality = assess_segmentation(labels, (10.0, 1.5, 1.5), "case_1")
        >>> quality.flagged, quality.score, quality.blood_pool_ml, quality.blood_pool_slices
        (False, 0.0, 12.26, 5)
        >>> assess_segmentation(np.zeros((5, 32, 32), int), (10.0, 1.5, 1.5), "empty").reasons
        ('no_foreground',)
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or len(spacing) != 3:
        raise ValueError(f"{case_id}: expected a (z, y, x) label map and 3 spacings, found shape "
                         f"{labels.shape} and spacing {tuple(spacing)}")
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    blood_ml = float((labels == blood_label).sum()) * voxel_ml
    myocardium_ml = float((labels == myocardium_label).sum()) * voxel_ml
    no_foreground = blood_ml == 0.0 and myocardium_ml == 0.0
    (blood_low, blood_high), (myo_low, myo_high) = BLOOD_POOL_ML_RANGE, MYOCARDIUM_ML_RANGE
    volume_implausible = not no_foreground and not (blood_low <= blood_ml <= blood_high
                                                    and myo_low <= myocardium_ml <= myo_high)
    blood_slices, missing, thin_fraction, not_enclosed = _slice_checks(labels, spacing, blood_label,
                                                                       myocardium_label)
    with_myocardium = blood_slices - missing
    checks = {
        "input_constant": input_constant, "no_foreground": no_foreground, "volume_implausible": volume_implausible,
        "missing_myocardium": missing > 0, "thin_wall": bool(thin_fraction > THIN_RING_FRACTION),
        "blood_pool_not_enclosed": not_enclosed > NOT_ENCLOSED_SLICE_FRACTION * with_myocardium,
        "mirror_unstable": bool(mirror_disagreement > MIRROR_DISAGREEMENT_LIMIT),
    }
    score = (_or_zero(mirror_disagreement) + missing / max(blood_slices, 1) + _or_zero(thin_fraction)
             + not_enclosed / max(blood_slices, 1)
             + float(volume_implausible) + float(no_foreground) + float(input_constant))
    reasons = tuple(name for name, failed in checks.items() if failed)
    return CaseQuality(
        case_id=case_id, flagged=bool(reasons), score=round(score, 4), reasons=reasons,
        mirror_disagreement=_rounded(mirror_disagreement), input_constant=bool(input_constant),
        no_foreground=no_foreground, blood_pool_ml=round(blood_ml, 2), myocardium_ml=round(myocardium_ml, 2),
        volume_implausible=volume_implausible, blood_pool_slices=blood_slices, slices_missing_myocardium=missing,
        missing_myocardium=missing > 0, thin_wall_fraction=_rounded(thin_fraction), thin_wall=checks["thin_wall"],
        mirror_unstable=checks["mirror_unstable"], slices_not_enclosed=int(not_enclosed),
        blood_pool_not_enclosed=bool(checks["blood_pool_not_enclosed"]),
    )


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


def _rounded(value: float) -> float:
    return math.nan if math.isnan(value) else round(float(value), 4)


def read_quality_report(output_dir: str | Path) -> list[CaseQuality]:
    """The records of ``output_dir/qc.json`` (empty list when the file does not exist).

    Raises ``ValueError`` naming the file when it is not a list of quality records.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = tmp.name
        >>> read_quality_report(folder)  # no qc.json yet
        []
        >>> _ = write_quality_report([assess_segmentation(np.zeros((2, 8, 8), int), (8.0, 1.5, 1.5), "c1")], folder)
        >>> [(r.case_id, r.reasons) for r in read_quality_report(folder)]
        [('c1', ('no_foreground',))]
        >>> tmp.cleanup()
    """
    path = Path(output_dir) / QUALITY_JSON_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        return [CaseQuality.from_dict(row) for row in data["cases"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a quality report written by lgeseg_predict ({err})") from err


def write_quality_report(records: Sequence[CaseQuality], output_dir: str | Path) -> list[CaseQuality]:
    """Write ``qc.json`` and ``qc.csv`` into ``output_dir``; returns all records written, by case id.

    Records of cases already in ``qc.json`` but not in ``records`` (cases skipped as already
    predicted) are kept; a case in both takes the new record. Both files are written atomically.

    Example:
        >>> import os
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = tmp.name
        >>> empty = np.zeros((2, 8, 8), int)
        >>> _ = write_quality_report([assess_segmentation(empty, (8.0, 1.5, 1.5), "c2")], folder)
        >>> records = write_quality_report([assess_segmentation(empty, (8.0, 1.5, 1.5), "c1")], folder)
        >>> [r.case_id for r in records], sorted(os.listdir(folder))  # c2 kept from the first call
        (['c1', 'c2'], ['qc.csv', 'qc.json'])
        >>> tmp.cleanup()
    """
    output_dir = Path(output_dir)
    merged = {record.case_id: record for record in read_quality_report(output_dir)}
    merged.update({record.case_id: record for record in records})
    ordered = [merged[key] for key in sorted(merged)]
    thresholds = {"min_wall_mm": MIN_WALL_MM, "thin_ring_fraction": THIN_RING_FRACTION,
                  "blood_pool_ml_range": list(BLOOD_POOL_ML_RANGE), "myocardium_ml_range": list(MYOCARDIUM_ML_RANGE),
                  "ring_gap_mm": RING_GAP_MM, "enclosed_fraction": ENCLOSED_FRACTION,
                  "not_enclosed_slice_fraction": NOT_ENCLOSED_SLICE_FRACTION, "min_blood_pool_mm2": MIN_BLOOD_POOL_MM2,
                  "missing_myocardium_fraction": MISSING_MYOCARDIUM_FRACTION,
                  "mirror_disagreement_limit": MIRROR_DISAGREEMENT_LIMIT}
    with atomic_output(output_dir / QUALITY_JSON_FILE, suffix=".json") as tmp:
        tmp.write_text(json.dumps({"thresholds": thresholds, "cases": [r.to_dict() for r in ordered]}, indent=1))
    with atomic_output(output_dir / QUALITY_CSV_FILE, suffix=".csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in ordered:
            row = record.to_dict()
            row["reasons"] = ";".join(record.reasons)
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return ordered


def summary_text(records: Sequence[CaseQuality]) -> str:
    """One line per flagged case (id, score, reasons) under a count, e.g. for the CLI's last output.

    Example:
        >>> records = [assess_segmentation(np.zeros((2, 8, 8), int), (8.0, 1.5, 1.5), "c1", input_constant=True)]
        >>> print(summary_text(records))
        quality check: 1 of 1 case(s) flagged for review (qc.csv)
          c1: score 2.00 (input_constant, no_foreground)
    """
    flagged = sorted((r for r in records if r.flagged), key=lambda r: -r.score)
    lines = [f"quality check: {len(flagged)} of {len(records)} case(s) flagged for review (qc.csv)"]
    lines += [f"  {r.case_id}: score {r.score:.2f} ({', '.join(r.reasons)})" for r in flagged]
    return "\n".join(lines)
