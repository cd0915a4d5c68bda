"""Clinical measurements of one predicted LV label map, without any reference: volumes, mass, wall thickness.

Pure NumPy. Arrays are (z, y, x); spacing is (z, y, x) mm; the direction is ITK's (LPS patient axes).

- **Volumes**: voxel count x voxel volume (slice summation, so the gaps between slices count, as in
  Simpson's method on a short-axis stack). LGE is acquired at one cardiac phase, usually mid-diastole,
  so the blood-pool volume is the cavity at that phase: an estimate of the end-diastolic volume (EDV).
- **Mass**: myocardial volume x 1.05 g/mL.
- **Wall thickness**: on each slice with a blood pool and a myocardium, 360 rays (1 degree apart, in mm
  of the slice plane) leave the blood pool's centroid; a ray's thickness is the length of its path
  inside the myocardium. Rays that meet no myocardium (a gap in the ring, the LV outflow tract) are not
  measured. A segment's thickness is the median of its rays over its slices, given when at least half
  of its rays met myocardium.
- **AHA segments** (Cerqueira et al., Circulation 2002, segments 1-16; the apex cap 17 is not measured):
  the slices with a myocardial ring are split into three equal groups (basal, mid, apical), the base
  being the end with the larger blood pool; basal and mid slices have six 60-degree sectors, apical
  slices four 90-degree sectors. The sectors are placed from the image orientation alone: the septum
  is taken to face the patient's right-anterior direction (where the right ventricle lies) projected
  onto the slice, the anterior wall the patient's anterior direction. Without the right ventricle's
  insertion points this places the boundaries to within roughly +-30 degrees, and it needs a true
  short-axis stack with a correct DICOM/NIfTI orientation; with fewer than three ring slices, or an
  orientation whose slice plane holds almost none of the right-anterior direction, only the global
  thickness is given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from lgeseg.evaluation.metrics import MYOCARDIUM_DENSITY_G_PER_ML

#: AHA 17-segment model, segments 1-16: (number, level, name).
AHA_SEGMENTS: tuple[tuple[int, str, str], ...] = (
    (1, "basal", "anterior"), (2, "basal", "anteroseptal"), (3, "basal", "inferoseptal"), (4, "basal", "inferior"),
    (5, "basal", "inferolateral"), (6, "basal", "anterolateral"), (7, "mid", "anterior"), (8, "mid", "anteroseptal"),
    (9, "mid", "inferoseptal"), (10, "mid", "inferior"), (11, "mid", "inferolateral"), (12, "mid", "anterolateral"),
    (13, "apical", "anterior"), (14, "apical", "septal"), (15, "apical", "inferior"), (16, "apical", "lateral"))
#: Sector of each wall, degrees from the septal direction towards anterior: [start, end).
SIX_SECTORS = {"anteroseptal": (0, 60), "anterior": (60, 120), "anterolateral": (120, 180), "inferolateral": (180, 240),
        "inferior": (240, 300), "inferoseptal": (300, 360)}
FOUR_SECTORS = {"septal": (-45, 45), "anterior": (45, 135), "lateral": (135, 225), "inferior": (225, 315)}
#: Patient directions in ITK's LPS axes (+x left, +y posterior, +z superior).
SEPTAL_LPS = np.array([-1.0, -1.0, 0.0]) / math.sqrt(2.0)
ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])
#: Fewest rays (of 360) meeting myocardium for a slice to count as a ring.
MIN_RING_RAYS = 180
#: A segment's thickness is reported when at least this fraction of its rays met myocardium.
MIN_SEGMENT_COVERAGE = 0.5


@dataclasses.dataclass(frozen=True)
class CaseMeasures:
    """Measurements of one case (see the module docstring for the methods).

    Attributes:
        blood_pool_ml: LV blood-pool volume, mL (the LGE phase's cavity: an EDV estimate).
        myocardium_ml: myocardial volume, mL.
        myocardium_mass_g: myocardial mass, g (1.05 g/mL).
        lv_slices: slices with blood pool or myocardium.
        ring_slices: slices with a measurable myocardial ring.
        wall_mean_mm: median wall thickness over all measured rays, mm (NaN without a ring).
        segments_mm: AHA segment number (1-16) -> median thickness, mm; NaN where not measurable.
        segments_note: why segments are missing, or "" when they were measured.
    """

    blood_pool_ml: float
    myocardium_ml: float
    myocardium_mass_g: float
    lv_slices: int
    ring_slices: int
    wall_mean_mm: float
    segments_mm: dict[int, float]
    segments_note: str


def in_plane_basis(direction: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit septal and anterior directions in the slice plane, as (along x mm, along y mm); None if undefined.

    Example:
        >>> septal, anterior = in_plane_basis((1, 0, 0, 0, 1, 0, 0, 0, 1))  # LPS axes: septum at (-x, -y)
        >>> np.round(septal, 3).tolist(), np.round(anterior, 3).tolist()
        ([-0.707, -0.707], [0.707, -0.707])
        >>> in_plane_basis((0, 0, 1, 0, 1, 0, 1, 0, 0)) is None  # the slice plane holds z and y: not short-axis
        True
    """
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    x_axis, y_axis = matrix[:, 0], matrix[:, 1]
    septal = np.array([SEPTAL_LPS @ x_axis, SEPTAL_LPS @ y_axis])
    if np.linalg.norm(septal) < 0.5:  # the plane holds under half of the right-anterior direction
        return None
    septal /= np.linalg.norm(septal)
    anterior = np.array([ANTERIOR_LPS @ x_axis, ANTERIOR_LPS @ y_axis])
    anterior -= (anterior @ septal) * septal
    if np.linalg.norm(anterior) < 1e-6:
        return None
    return septal, anterior / np.linalg.norm(anterior)


def ray_thickness(myocardium: np.ndarray, blood: np.ndarray, spacing_yx: Sequence[float],
                  septal: np.ndarray, anterior: np.ndarray, max_mm: float = 120.0) -> np.ndarray:
    """Wall thickness along 360 rays from the blood pool's centroid of one slice.

    Args:
        myocardium, blood: bool (y, x) masks.
        spacing_yx: pixel size, mm.
        septal, anterior: orthonormal in-plane directions (x mm, y mm); ray k points k degrees from
            ``septal`` towards ``anterior``.
        max_mm: ray length.

    Returns:
        float (360,) thickness per ray, mm; 0 where the ray meets no myocardium.

    Example:
        >>> yy, xx = np.mgrid[:64, :64]; radius = np.hypot(yy - 32, xx - 32)  # pixels of 1 mm
        >>> blood, myocardium = radius < 10, (radius >= 10) & (radius < 16)  # a 6 mm thick ring
        >>> thickness = ray_thickness(myocardium, blood, (1.0, 1.0), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
        >>> thickness.shape, round(float(np.median(thickness)), 1)
        ((360,), 6.0)
    """
    sy, sx = (float(s) for s in spacing_yx)
    cy, cx = np.argwhere(blood).mean(axis=0)
    step = 0.25 * min(sy, sx)
    t = np.arange(0.0, max_mm, step)
    angles = np.deg2rad(np.arange(360))
    dirs = np.cos(angles)[:, None] * septal[None] + np.sin(angles)[:, None] * anterior[None]  # (360, 2) x, y mm
    xs = np.rint(cx + dirs[:, :1] * t[None] / sx).astype(int)
    ys = np.rint(cy + dirs[:, 1:] * t[None] / sy).astype(int)
    inside = (ys >= 0) & (ys < myocardium.shape[0]) & (xs >= 0) & (xs < myocardium.shape[1])
    hits = np.zeros(inside.shape, dtype=bool)
    hits[inside] = myocardium[ys[inside], xs[inside]]
    return hits.sum(axis=1) * step


def _sector_values(thickness: np.ndarray, sectors: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    degrees = np.arange(360)
    return {name: thickness[((degrees - lo) % 360) < (hi - lo)] for name, (lo, hi) in sectors.items()}


def slice_levels(ring: list[int], blood: np.ndarray) -> dict[str, list[int]]:
    """Split the ring slices into basal, mid, apical thirds; the base is the end with the larger blood pool.

    Example:
        >>> blood = np.zeros((6, 4, 4), bool); blood[0, :3, :3] = True; blood[1:5, :2, :2] = True
        >>> slice_levels([0, 1, 2, 3, 4], blood)  # slice 0 has the largest blood pool: the base
        {'basal': [0, 1], 'mid': [2, 3], 'apical': [4]}
    """
    order = list(ring)
    if blood[order[0]].sum() < blood[order[-1]].sum():
        order.reverse()
    base, mid, apex = ([int(z) for z in part] for part in np.array_split(order, 3))
    return {"basal": base, "mid": mid, "apical": apex}


def _segments(per_slice: dict[int, np.ndarray], levels: dict[str, list[int]]) -> dict[int, float]:
    result: dict[int, float] = {}
    for number, level, name in AHA_SEGMENTS:
        sectors = FOUR_SECTORS if level == "apical" else SIX_SECTORS
        rays = np.concatenate([_sector_values(per_slice[z], sectors)[name] for z in levels[level]])
        measured = rays[rays > 0]
        covered = rays.size and measured.size >= MIN_SEGMENT_COVERAGE * rays.size
        result[number] = float(np.median(measured)) if covered else math.nan
    return result


def measure_case(labels: np.ndarray, spacing: Sequence[float], direction: Sequence[float],
                 blood_label: int = 1, myocardium_label: int = 2) -> CaseMeasures:
    """Volumes, mass and wall thickness (global and per AHA segment) of one label map.

    Args:
        labels: uint8 (z, y, x) label map.
        spacing: mm (z, y, x).
        direction: ITK direction cosines (9 values, LPS), which orient the AHA segments.
        blood_label, myocardium_label: label values of the LV blood pool and myocardium.

    Returns:
        ``CaseMeasures``.

    Example:
        >>> from lgeseg.synth import synthesize_case
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=64)
        >>> measures = measure_case(case.label, case.geometry.spacing, case.geometry.direction)
        >>> round(measures.blood_pool_ml), round(measures.myocardium_mass_g), measures.lv_slices, measures.segments_note
        (93, 77, 6, '')
        >>> sorted(measures.segments_mm) == list(range(1, 17)), round(measures.wall_mean_mm, 1)
        (True, 7.3)
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    blood, myocardium = labels == blood_label, labels == myocardium_label
    myocardium_ml = float(np.count_nonzero(myocardium)) * voxel_ml
    lv_slices = int(np.count_nonzero((blood | myocardium).any(axis=(1, 2))))
    basis = in_plane_basis(direction)
    septal, anterior = basis if basis is not None else (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    per_slice = {z: ray_thickness(myocardium[z], blood[z], spacing[1:], septal, anterior)
                 for z in range(labels.shape[0]) if blood[z].any() and myocardium[z].any()}
    per_slice = {z: t for z, t in per_slice.items() if np.count_nonzero(t) >= MIN_RING_RAYS}
    measured = np.concatenate([t[t > 0] for t in per_slice.values()]) if per_slice else np.zeros(0)
    note = ""
    if basis is None:
        note = "slice orientation unknown or not short-axis: no AHA segments"
    elif len(per_slice) < 3:
        note = f"{len(per_slice)} slice(s) with a myocardial ring: AHA segments need at least 3"
    segments = {n: math.nan for n, _, _ in AHA_SEGMENTS}
    if not note:
        segments = _segments(per_slice, slice_levels(sorted(per_slice), blood))
    return CaseMeasures(
        blood_pool_ml=float(np.count_nonzero(blood)) * voxel_ml, myocardium_ml=myocardium_ml,
        myocardium_mass_g=myocardium_ml * MYOCARDIUM_DENSITY_G_PER_ML, lv_slices=lv_slices,
        ring_slices=len(per_slice), wall_mean_mm=float(np.median(measured)) if measured.size else math.nan,
        segments_mm=segments, segments_note=note)
