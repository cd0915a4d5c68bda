"""One synthetic LGE case: sample a subject and a center's acquisition, sample the anatomy, acquire.

Deterministic: every random draw of a case comes from ``np.random.default_rng([seed, center,
index])``, so a case does not depend on which other cases or centers are generated.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lgeseg.core.records import CaseGeometry
from lgeseg.synth import anatomy
from lgeseg.synth.centers import CenterProfile, get_profile
from lgeseg.synth.contrast import Acquisition, acquire, tissue_signals

#: Sub-slices are at most this far apart (mm) when averaging through the slice thickness.
SUB_SLICE_MM = 2.5
#: A stack with gaps between its slices spans at most this (mm, first to last slice centre): such stacks
#: are spread over the ventricle (70-90 mm long), as in myops_lge (23-69 mm).
MAX_GAPPED_COVERAGE_MM = 70.0
#: In-plane half-width (mm) around the LV axis inside which the heart is evaluated.
HEART_HALF_WIDTH_MM = 110.0


@dataclasses.dataclass(frozen=True)
class SyntheticCase:
    """A generated case with what is needed to check it.

    Attributes:
        image: float32 (z, y, x), the stored intensities.
        label: uint8 (z, y, x): 0 background, 1 LV blood pool, 2 LV myocardium.
        scar: bool (z, y, x): voxels mostly scar or microvascular obstruction (all labelled 2).
        geometry: spacing (mm, (z, y, x)), origin and direction of the written file.
        subject: the sampled anatomy.
        acquisition: the sampled acquisition.
        profile: the center's profile.
    """

    image: np.ndarray
    label: np.ndarray
    scar: np.ndarray
    geometry: CaseGeometry
    subject: anatomy.Subject
    acquisition: Acquisition
    profile: CenterProfile


def case_rng(seed: int, center: int, index: int) -> np.random.Generator:
    """The generator of case ``index`` of ``center`` for ``seed``.

    Example:
        >>> int(case_rng(0, 1, 2).integers(100)) == int(case_rng(0, 1, 2).integers(100))  # same case, same draws
        True
    """
    return np.random.default_rng([int(seed), int(center), int(index)])


def is_scar_free(seed: int, center: int, index: int) -> bool:
    """Whether case ``index`` has no infarct: every third case of a center (offset by seed and
    center), so even a small dataset has about one third healthy subjects, like EMIDEC.

    Example:
        >>> [is_scar_free(seed=0, center=1, index=i) for i in range(6)]
        [False, False, True, False, False, True]
    """
    return (int(seed) + int(center) + int(index)) % 3 == 0


def sample_acquisition(profile: CenterProfile, rng: np.random.Generator, in_plane_size: int | None = None,
                       num_slices: int | None = None) -> Acquisition:
    """Draw the grid and scanner settings of one case within the center's Table 1 ranges.

    ``in_plane_size`` (pixels) overrides the matrix, keeping the field of view (so spacing grows);
    ``num_slices`` overrides the slice count, keeping the thickness and gap. The gap is drawn only for
    centers that have one (so the other centers' cases do not depend on it); their stacks span at most
    ``MAX_GAPPED_COVERAGE_MM`` unless ``num_slices`` is given.

    Example:
        >>> acquisition = sample_acquisition(get_profile(1), case_rng(0, 1, 0), in_plane_size=32)
        >>> acquisition.shape, acquisition.spacing  # the center's field of view on a 32 x 32 matrix
        ((7, 32, 32), (13.0, 10.716, 10.716))
    """
    spacing = float(round(rng.uniform(*profile.in_plane_spacing_mm), 3))
    thickness = float(rng.choice(profile.slice_thickness_mm))
    gap = float(round(rng.uniform(*profile.slice_gap_mm), 1)) if max(profile.slice_gap_mm) > 0 else 0.0
    slices = int(rng.integers(profile.num_slices[0], profile.num_slices[1] + 1))
    if gap > 0.0:
        slices = max(profile.num_slices[0], min(slices, 1 + int(MAX_GAPPED_COVERAGE_MM // (thickness + gap))))
    fov = rng.uniform(*profile.fov_mm)
    nx = min(profile.max_matrix, 2 * int(round(fov / spacing / 2.0)))
    ny = 2 * int(round(nx * rng.uniform(*profile.phase_fov_fraction) / 2.0))
    row_spacing = col_spacing = spacing
    if in_plane_size is not None:
        if in_plane_size < 16:
            raise ValueError(f"in_plane_size must be at least 16 pixels, found {in_plane_size}")
        row_spacing = col_spacing = round(nx * spacing / in_plane_size, 4)
        nx = ny = int(in_plane_size)
    if num_slices is not None:
        if num_slices < 1:
            raise ValueError(f"num_slices must be at least 1, found {num_slices}")
        slices = int(num_slices)
    ghost = rng.random() < profile.ghost_probability
    return Acquisition(
        field_strength_t=float(rng.choice(profile.field_strengths_t)),
        spacing=(thickness + gap, row_spacing, col_spacing), shape=(slices, ny, nx), slice_thickness=thickness,
        imaging_time_min=float(rng.uniform(*profile.imaging_time_min)),
        ti_error=float(np.clip(rng.normal(*profile.ti_error), -0.15, 0.45)),
        ghost_amplitude=float(rng.uniform(*profile.ghost_amplitude)) if ghost else 0.0,
        ghost_shift=int(ny * rng.uniform(0.2, 0.45)), output_max=float(rng.uniform(*profile.output_max)),
    )


def _direction(kind: str, rng: np.random.Generator) -> tuple[float, ...]:
    """Row-major ITK direction cosines (LPS) of the (x, y, z) index axes."""
    if kind == "identity":
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    if kind == "flipped":
        return (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    # Short axis: slices step from base to apex (towards the patient's left, anterior, inferior);
    # image y points inferior and image x to the lateral wall (patient's left, posterior), as the
    # anatomy is drawn. That triple is left-handed (determinant -1), as for many short-axis stacks
    # stored base to apex.
    normal = np.array([0.55, -0.45, -0.70]) + rng.normal(0.0, 0.08, size=3)
    normal /= np.linalg.norm(normal)
    inferior = np.array([0.0, 0.0, -1.0])
    row = inferior - (inferior @ normal) * normal  # image y
    row /= np.linalg.norm(row)
    col = np.cross(normal, row)  # image x
    matrix = np.stack([col, row, normal], axis=1)  # columns: directions of index x, y, z
    return tuple(float(v) for v in matrix.ravel())


def _geometry(acq: Acquisition, kind: str, rng: np.random.Generator) -> CaseGeometry:
    direction = _direction(kind, rng)
    matrix = np.array(direction).reshape(3, 3)
    nz, ny, nx = acq.shape
    half_extent = np.array([(nx - 1) * acq.spacing[2], (ny - 1) * acq.spacing[1], (nz - 1) * acq.spacing[0]]) / 2.0
    centre_world = np.array([20.0, 30.0, -120.0]) + rng.normal(0.0, 15.0, size=3)
    origin = centre_world - matrix @ half_extent
    return CaseGeometry(shape=acq.shape, spacing=acq.spacing, origin=tuple(float(v) for v in origin),
                        direction=direction)


def _axis_mm(n: int, spacing: float) -> np.ndarray:
    return ((np.arange(n) - (n - 1) / 2.0) * spacing).astype(np.float32)


def _heart_window(x: np.ndarray, y: np.ndarray, subject: anatomy.Subject) -> tuple[slice, slice]:
    xs = np.nonzero(np.abs(x - subject.lv_x) < HEART_HALF_WIDTH_MM)[0]
    ys = np.nonzero(np.abs(y - subject.lv_y) < HEART_HALF_WIDTH_MM)[0]
    return slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)


def sample_anatomy(subject: anatomy.Subject, acq: Acquisition) -> np.ndarray:
    """Sample the tissue classes at sub-slices through each slice's thickness.

    Slice centres are ``acq.spacing[0]`` apart (thickness plus gap); sub-slices are spread evenly
    through the thickness, at most ``SUB_SLICE_MM`` apart, at the
    in-plane voxel centres. Returns int8 tissue classes of shape (n_sub, z, y, x).

    Example:
        >>> rng = case_rng(0, 1, 0)
        >>> acquisition = sample_acquisition(get_profile(1), rng, in_plane_size=32)
        >>> classes = sample_anatomy(anatomy.sample_subject(rng, scar_free=True), acquisition)
        >>> classes.dtype, classes.shape[1:]  # (sub-slices, z, y, x)
        (dtype('int8'), (7, 32, 32))
    """
    nz, ny, nx = acq.shape
    thickness = acq.slice_thickness
    n_sub = max(1, math.ceil(thickness / SUB_SLICE_MM))
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * thickness
    x = _axis_mm(nx, acq.spacing[2])
    y = _axis_mm(ny, acq.spacing[1])
    z = _axis_mm(nz, acq.spacing[0])
    rows, cols = _heart_window(x, y, subject)
    stack = np.empty((n_sub, nz, ny, nx), dtype=np.int8)
    for k, offset in enumerate(offsets):
        zk = (z + offset)[:, None, None]
        tissue = anatomy.torso_classes(x[None, None, :], y[None, :, None], zk, subject)
        window = tissue[:, rows, cols]
        anatomy.paint_heart(window, x[None, None, cols], y[None, rows, None], zk, subject)
        stack[k] = tissue
    return stack


def _majority_label(labels: np.ndarray) -> np.ndarray:
    """Most frequent label over axis 0 (sub-slices) of a (n_sub, z, y, x) stack; ties go to the lower label."""
    n = labels.shape[0]
    blood = (labels == 1).sum(axis=0, dtype=np.int16)
    myo = (labels == 2).sum(axis=0, dtype=np.int16)
    background = n - blood - myo
    label = np.zeros(blood.shape, dtype=np.uint8)
    label[(blood > background) & (blood >= myo)] = 1
    label[(myo > background) & (myo > blood)] = 2
    return label


def synthesize_case(center: int | str, index: int, seed: int, in_plane_size: int | None = None,
                    num_slices: int | None = None) -> SyntheticCase:
    """Generate case ``index`` of ``center`` (1..4) for ``seed``, with everything needed to check it.

    See ``generate_case`` for the arguments. Returns a ``SyntheticCase``.

    Example:
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=32)
        >>> case.image.shape, sorted(np.unique(case.label).tolist()), bool(case.scar.any())
        ((6, 32, 32), [0, 1, 2], True)
    """
    profile = get_profile(center)
    rng = case_rng(seed, profile.number, index)
    subject = anatomy.sample_subject(rng, scar_free=is_scar_free(seed, profile.number, index))
    acq = sample_acquisition(profile, rng, in_plane_size, num_slices)
    geometry = _geometry(acq, profile.direction, rng)
    stack = sample_anatomy(subject, acq)
    signals = tissue_signals(acq, rng)
    signal = signals[stack].mean(axis=0)
    label = _majority_label(anatomy.TISSUE_TO_LABEL[stack])
    scar = (2 * (stack >= anatomy.SCAR).sum(axis=0, dtype=np.int16) > stack.shape[0]) & (label == 2)
    image = acquire(signal, acq, profile, float(signals[anatomy.LV_BLOOD]), rng)
    return SyntheticCase(image=image, label=label, scar=scar, geometry=geometry, subject=subject,
                         acquisition=acq, profile=profile)


def generate_case(center: int | str, index: int, seed: int, in_plane_size: int | None = None,
                  num_slices: int | None = None) -> tuple[np.ndarray, np.ndarray, CaseGeometry]:
    """Generate one synthetic LGE short-axis stack in memory.

    Args:
        center: 1..4 (or ``"center1"``...); see ``lgeseg.synth.centers.CENTERS``.
        index: case number within the center (0, 1, ...).
        seed: dataset seed; the case depends only on (seed, center, index).
        in_plane_size: optional square matrix (pixels) replacing the center's, keeping its field of
            view (spacing grows accordingly) - for tiny, fast test cases such as 64 x 64.
        num_slices: optional number of slices replacing the center's draw (thickness and gap kept).

    Returns:
        (image float32 (z, y, x), label uint8 (z, y, x) with 0 background, 1 LV blood pool,
        2 LV myocardium, geometry with spacing in mm (z, y, x)).

    Example:
        >>> image, label, geometry = generate_case(1, 0, seed=0, in_plane_size=64, num_slices=4)
        >>> image.shape
        (4, 64, 64)
    """
    case = synthesize_case(center, index, seed, in_plane_size, num_slices)
    return case.image, case.label, case.geometry
