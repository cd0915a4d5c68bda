"""The phantom's anatomy: continuous functions of physical position (mm) -> tissue class.

Coordinates are millimetres in the image frame of a short-axis stack, relative to the centre of
the volume: x to the right of the image (towards the patient's left: lateral LV wall), y down the
image (inferior), z along the slice normal (base -> apex). Nothing here knows about voxels: the
phantom samples these functions on each center's grid (``lgeseg.synth.phantom``).

The left ventricle is a truncated ellipsoidal shell around a slightly tilted long axis: the
cavity narrows to the apex, the wall thickness varies by region (6-12 mm). Around it: a
crescent-shaped right ventricle on the septum, epicardial fat (thicker in the grooves and at
the base), the left atrium above the base, papillary muscles inside the cavity, and a torso
with subcutaneous fat, chest-wall muscle, lungs, liver, spine and descending aorta.

Ground-truth convention: papillary muscles are labelled blood pool (as in EMIDEC and
MS-CMRSeg); scar and microvascular obstruction are labelled myocardium.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Tissue classes (indices into the contrast tables of ``lgeseg.synth.contrast``).
AIR, LUNG, MUSCLE, FAT, LIVER, BONE, BLOOD, MYOCARDIUM = 0, 1, 2, 3, 4, 5, 6, 7
LV_BLOOD, LV_MYOCARDIUM, PAPILLARY, SCAR, MVO = 8, 9, 10, 11, 12
TISSUE_NAMES: tuple[str, ...] = (
    "air", "lung", "muscle", "fat", "liver", "bone", "blood", "myocardium",
    "lv_blood", "lv_myocardium", "papillary", "scar", "mvo",
)
#: tissue class -> ground-truth label (0 background, 1 LV blood pool, 2 LV myocardium).
TISSUE_TO_LABEL = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 2], dtype=np.uint8)

#: Coronary territories: (centre, half width) in degrees of the angle from the septum towards
#: anterior (+90 anterior, 180 lateral, -90 inferior), and the long-axis range (fraction of the
#: LV length from the base) where an infarct in that territory may lie.
TERRITORIES: dict[str, tuple[float, float, float, float]] = {
    "LAD": (45.0, 60.0, 0.25, 1.0),  # anteroseptal, down to the apex
    "LCx": (195.0, 50.0, 0.0, 0.7),  # lateral / inferolateral
    "RCA": (-75.0, 50.0, 0.0, 0.75),  # inferior / inferoseptal
}


@dataclasses.dataclass(frozen=True)
class Infarct:
    """One infarct: a territory's sector of the LV wall, from the endocardium outwards.

    Attributes:
        territory: ``"LAD"``, ``"LCx"`` or ``"RCA"``.
        centre_deg, half_width_deg: angular sector (degrees from the septum, towards anterior).
        start, end: long-axis extent as fractions of the epicardial length (0 base, 1 apex).
        transmurality: fraction of the wall (from the endocardium) enhanced at the sector centre.
        mvo: whether a dark microvascular-obstruction core lies inside the infarct.
    """

    territory: str
    centre_deg: float
    half_width_deg: float
    start: float
    end: float
    transmurality: float
    mvo: bool


@dataclasses.dataclass(frozen=True)
class Subject:
    """Random anatomy of one subject; lengths in mm (image frame), angles in radians.

    Attributes:
        lv_x, lv_y, base_z: where the LV long axis crosses the base plane.
        tilt, azimuth: long-axis tilt from the slice normal and its direction.
        r_endo, ellipticity, ellipse_angle: basal endocardial radius and its elliptical shape.
        wall: regional wall thickness harmonics (mean, c1, phase1, c2, phase2), clipped to 6-12 mm.
        l_endo, apex_wall: cavity length from the base and wall thickness at the apex.
        septum_angle: in-plane direction from the LV axis to the septum (image frame).
        rv_depth, rv_insertion, rv_length: RV crescent depth, insertion angle from the septum and
            length (fraction of the LV length).
        fat_base, fat_groove, papillary_radius: epicardial fat everywhere / in the grooves, and
            the papillary muscles' radius.
        body, body_phase, subcutaneous_fat, chest_muscle, liver, lung_vessels: the torso.
        infarcts: none for a scar-free subject.
    """

    lv_x: float
    lv_y: float
    base_z: float
    tilt: float
    azimuth: float
    r_endo: float
    ellipticity: float
    ellipse_angle: float
    wall: tuple[float, float, float, float, float]  # mean, c1, phase1, c2, phase2
    l_endo: float
    apex_wall: float
    septum_angle: float
    rv_depth: float
    rv_insertion: float
    rv_length: float
    fat_base: float
    fat_groove: float
    papillary_radius: float
    body: tuple[float, float, float, float]  # centre x, centre y, semi-axis x, semi-axis y
    body_phase: float
    subcutaneous_fat: float
    chest_muscle: float
    liver: tuple[float, float, float, float, float, float]  # centre xyz, radii xyz
    lung_vessels: tuple[tuple[float, float, float, float, float], ...]  # x, y, dx/dz, dy/dz, radius
    infarcts: tuple[Infarct, ...]

    @property
    def l_epi(self) -> float:
        """Epicardial long-axis length from the base to the apex, mm."""
        return self.l_endo + self.apex_wall


def sample_subject(rng: np.random.Generator, scar_free: bool) -> Subject:
    """Draw one subject's anatomy (size, orientation, position, infarcts) from ``rng``.

    ``scar_free`` subjects get no infarct; the others one (85 %) or two infarcts.

    Example:
        >>> subject = sample_subject(np.random.default_rng(0), scar_free=False)
        >>> len(subject.infarcts), round(subject.r_endo, 1)  # one infarct; cavity radius at the base, mm
        (1, 24.7)
        >>> sample_subject(np.random.default_rng(0), scar_free=True).infarcts
        ()
    """
    r_endo = rng.uniform(19.0, 28.0)
    l_endo = rng.uniform(62.0, 82.0)
    apex_wall = rng.uniform(6.0, 10.0)
    lv_x, lv_y = rng.uniform(-8.0, 14.0), rng.uniform(-10.0, 10.0)
    wall_mean = rng.uniform(7.5, 10.0)
    epi = r_endo + wall_mean
    rv_depth = rng.uniform(16.0, 28.0)
    body_ax, body_ay = rng.uniform(130.0, 165.0), rng.uniform(88.0, 112.0)
    anterior = lv_y - epi - rv_depth - rng.uniform(18.0, 40.0)
    body = (lv_x - rng.uniform(25.0, 50.0), anterior + body_ay, body_ax, body_ay)
    apex_z = 0.55 * (l_endo + apex_wall)
    liver = (
        lv_x - rng.uniform(30.0, 60.0), lv_y + epi + rng.uniform(45.0, 65.0), apex_z + rng.uniform(0.0, 30.0),
        rng.uniform(80.0, 100.0), rng.uniform(40.0, 50.0), rng.uniform(50.0, 70.0),
    )
    return Subject(
        lv_x=lv_x, lv_y=lv_y, base_z=-0.45 * (l_endo + apex_wall) + rng.uniform(-6.0, 6.0),
        tilt=float(np.deg2rad(rng.uniform(0.0, 8.0))), azimuth=rng.uniform(-np.pi, np.pi),
        r_endo=r_endo, ellipticity=rng.uniform(0.0, 0.08), ellipse_angle=rng.uniform(0.0, np.pi),
        wall=(wall_mean, rng.uniform(0.0, 1.5), rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 1.0),
              rng.uniform(-np.pi, np.pi)),
        l_endo=l_endo, apex_wall=apex_wall, septum_angle=float(np.pi + np.deg2rad(rng.uniform(-15.0, 15.0))),
        rv_depth=rv_depth, rv_insertion=float(np.deg2rad(rng.uniform(65.0, 85.0))), rv_length=rng.uniform(0.7, 0.85),
        fat_base=rng.uniform(0.0, 1.5), fat_groove=rng.uniform(3.0, 8.0), papillary_radius=rng.uniform(3.5, 5.5),
        body=body, body_phase=rng.uniform(-np.pi, np.pi), subcutaneous_fat=rng.uniform(5.0, 22.0),
        chest_muscle=rng.uniform(7.0, 14.0), liver=liver,
        lung_vessels=_sample_vessels(rng, body), infarcts=_sample_infarcts(rng, scar_free),
    )


def _sample_vessels(rng: np.random.Generator, body: tuple[float, float, float, float],
                    count: int = 30) -> tuple[tuple[float, float, float, float, float], ...]:
    radius = np.sqrt(rng.uniform(0.0, 0.85, size=count))
    angle = rng.uniform(-np.pi, np.pi, size=count)
    x = body[0] + body[2] * radius * np.cos(angle)
    y = body[1] + body[3] * radius * np.sin(angle)
    slopes = rng.uniform(-0.5, 0.5, size=(count, 2))
    sizes = rng.uniform(0.7, 2.0, size=count)
    return tuple((float(x[i]), float(y[i]), float(slopes[i, 0]), float(slopes[i, 1]), float(sizes[i]))
                 for i in range(count))


def _sample_infarcts(rng: np.random.Generator, scar_free: bool) -> tuple[Infarct, ...]:
    if scar_free:
        return ()
    count = 1 if rng.random() < 0.85 else 2
    names = rng.choice(["LAD", "LCx", "RCA"], size=count, replace=False, p=[0.5, 0.2, 0.3])
    infarcts = []
    for name in names:
        centre, width, lo, hi = TERRITORIES[str(name)]
        start = rng.uniform(lo, lo + 0.5 * (hi - lo))
        end = min(hi, start + rng.uniform(0.3, 0.7) * (hi - lo))
        transmurality = rng.uniform(0.3, 1.0)
        infarcts.append(Infarct(
            territory=str(name), centre_deg=centre + rng.uniform(-15.0, 15.0),
            half_width_deg=width * rng.uniform(0.7, 1.1), start=start, end=end, transmurality=transmurality,
            mvo=bool(transmurality > 0.7 and rng.random() < 0.4),
        ))
    return tuple(infarcts)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def _lv_frame(x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: Subject) -> tuple[np.ndarray, ...]:
    """Return (s, u, v): long-axis position from the base and the two in-plane coordinates
    across the axis (mm, float32, broadcast shape); ``u`` follows image x, ``v`` image y."""
    sin_t = np.sin(subject.tilt)
    axis = np.array([sin_t * np.cos(subject.azimuth), sin_t * np.sin(subject.azimuth), np.cos(subject.tilt)])
    e1 = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    dx, dy, dz = x - subject.lv_x, y - subject.lv_y, z - subject.base_z
    # Python floats keep the float32 inputs in float32.
    s = dx * float(axis[0]) + dy * float(axis[1]) + dz * float(axis[2])
    u = dx * float(e1[0]) + dy * float(e1[1]) + dz * float(e1[2])
    v = dx * float(e2[0]) + dy * float(e2[1]) + dz * float(e2[2])
    return s, u, v


def _radii(s: np.ndarray, psi: np.ndarray, subject: Subject) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Endocardial and epicardial radius (mm) at long-axis position ``s`` and angle ``psi``, and
    the epicardial radius at the base (s = 0) for the same angle."""
    theta = psi + subject.septum_angle
    r_endo0 = subject.r_endo * (1.0 + subject.ellipticity * np.cos(2.0 * (theta - subject.ellipse_angle)))
    mean, c1, p1, c2, p2 = subject.wall
    r_epi0 = r_endo0 + np.clip(mean + c1 * np.cos(theta - p1) + c2 * np.cos(2.0 * (theta - p2)), 6.0, 12.0)
    s_pos = np.maximum(s, 0.0)
    r_endo = r_endo0 * np.sqrt(np.clip(1.0 - (s_pos / subject.l_endo) ** 2, 0.0, 1.0))
    r_epi = r_epi0 * np.sqrt(np.clip(1.0 - (s_pos / subject.l_epi) ** 2, 0.0, 1.0))
    return r_endo, r_epi, r_epi0


def torso_classes(x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: Subject) -> np.ndarray:
    """Tissue classes of the torso (everything but the heart) at positions ``x, y, z`` (mm).

    ``x``, ``y``, ``z`` are the axis vectors of a grid, shaped (1, 1, nx), (1, ny, 1) and
    (nz, 1, 1), increasing; returns int8 of shape (nz, ny, nx).

    Example:
        >>> axis = np.arange(-80.0, 80.0, 2.5)  # a 64 x 64 grid of 2.5 mm around the centre, one slice at z = 0 mm
        >>> x, y, z = axis[None, None, :], axis[None, :, None], np.zeros((1, 1, 1))
        >>> torso = torso_classes(x, y, z, sample_subject(np.random.default_rng(0), scar_free=True))
        >>> torso.shape, torso.dtype, [TISSUE_NAMES[t] for t in np.unique(torso)]
        ((1, 64, 64), dtype('int8'), ['air', 'lung', 'muscle', 'fat', 'liver', 'bone', 'blood'])
    """
    bx, by, ax, ay = subject.body
    dx, dy = x - bx, y - by
    phi = np.arctan2(dy, dx)
    rho = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2 + 1e-12) * (1.0 + 0.04 * np.cos(2.0 * phi + subject.body_phase))
    inside = rho < 1.0
    depth = np.hypot(dx, dy) * (1.0 / rho - 1.0)  # distance to the skin along the ray from the centre
    shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
    tissue = np.broadcast_to(np.where(inside, np.int8(LUNG), np.int8(AIR)), shape).copy()
    spine_x, spine_y = bx + 0.1 * ax, by + ay - 45.0
    # Mediastinum: soft tissue from behind the heart to the spine, holding the aorta.
    half_height = 0.5 * (spine_y - subject.lv_y) + 10.0
    mediastinum = np.hypot((x - spine_x - 10.0) / 38.0, (y - spine_y + half_height - 10.0) / half_height) < 1.0
    tissue[np.broadcast_to(mediastinum & inside, shape)] = MUSCLE
    lx, ly, lz, rx, ry, rz = subject.liver
    liver = ((x - lx) / rx) ** 2 + ((y - ly) / ry) ** 2 + ((z - lz) / rz) ** 2 < 1.0
    tissue[np.broadcast_to(liver & inside, shape)] = LIVER
    tissue[np.broadcast_to(np.hypot(x - spine_x, y - spine_y) < 17.0, shape)] = BONE
    tissue[np.broadcast_to(np.hypot(x - spine_x - 28.0, y - spine_y + 24.0) < 11.0, shape)] = BLOOD
    fat = subject.subcutaneous_fat * (1.0 + 0.5 * np.cos(phi - subject.body_phase))
    tissue[np.broadcast_to(inside & (depth < fat + subject.chest_muscle), shape)] = MUSCLE
    tissue[np.broadcast_to(inside & (depth < fat), shape)] = FAT
    _paint_lung_vessels(tissue, x.ravel(), y.ravel(), z.ravel(), subject)
    return tissue


def _paint_lung_vessels(tissue: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: Subject) -> None:
    """Pulmonary vessels: thin oblique cylinders of blood, visible only inside the lungs.

    ``x``, ``y``, ``z`` are the grid's axis vectors (mm); each vessel is drawn in a small window
    per slice, so this costs little even on large grids.
    """
    if tissue.shape != (z.size, y.size, x.size):
        raise ValueError(f"expected grid axis vectors for a {tissue.shape} volume, found {z.size, y.size, x.size}")
    for vx, vy, slope_x, slope_y, radius in subject.lung_vessels:
        for k, zk in enumerate(z):
            cx, cy = vx + slope_x * zk, vy + slope_y * zk
            x0, x1 = np.searchsorted(x, (cx - radius, cx + radius))
            y0, y1 = np.searchsorted(y, (cy - radius, cy + radius))
            if x1 <= x0 or y1 <= y0:
                continue
            window = tissue[k, y0:y1, x0:x1]
            disc = np.hypot(x[None, x0:x1] - cx, y[y0:y1, None] - cy) < radius
            window[disc & (window == LUNG)] = BLOOD


def tissue_classes(x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: Subject) -> np.ndarray:
    """Tissue class (int8, see ``TISSUE_NAMES``) at physical positions (mm, image frame).

    ``x``, ``y``, ``z`` are grid axis vectors shaped (1, 1, nx), (1, ny, 1), (nz, 1, 1).

    Example:
        >>> axis = np.arange(-80.0, 80.0, 2.5)  # a 64 x 64 grid of 2.5 mm around the centre, one slice at z = 0 mm
        >>> x, y, z = axis[None, None, :], axis[None, :, None], np.zeros((1, 1, 1))
        >>> tissue = tissue_classes(x, y, z, sample_subject(np.random.default_rng(0), scar_free=True))
        >>> sorted(np.unique(TISSUE_TO_LABEL[tissue]).tolist())  # background, blood pool and myocardium are there
        [0, 1, 2]
    """
    tissue = torso_classes(x, y, z, subject)
    paint_heart(tissue, x, y, z, subject)
    return tissue


def paint_heart(tissue: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: Subject) -> None:
    """Paint RV, fat, left atrium, LV, papillary muscles and infarcts into ``tissue`` in place.

    ``x, y, z`` (mm) broadcast to ``tissue.shape``; ``tissue`` may be a view of a larger volume.
    Only points within reach of the LV axis are evaluated (the rest cannot be heart).

    Example:
        >>> axis = np.arange(-80.0, 80.0, 2.5)  # a 64 x 64 grid of 2.5 mm around the centre, one slice at z = 0 mm
        >>> x, y, z = axis[None, None, :], axis[None, :, None], np.zeros((1, 1, 1))
        >>> subject = sample_subject(np.random.default_rng(0), scar_free=True)
        >>> tissue = torso_classes(x, y, z, subject)
        >>> paint_heart(tissue, x, y, z, subject)
        >>> bool((tissue == LV_MYOCARDIUM).any()), np.array_equal(tissue, tissue_classes(x, y, z, subject))
        (True, True)
    """
    s, u, v = _lv_frame(x, y, z, subject)
    r = np.hypot(u, v)
    # Outermost heart radius: LV wall plus the thicker of RV and fat; the LV and RV narrow to the apex.
    reach = subject.r_endo * 1.1 + 12.0 + max(subject.rv_depth + 3.0, subject.fat_base + 1.6 * subject.fat_groove)
    narrowing = np.sqrt(np.clip(1.0 - (np.maximum(s, 0.0) / (subject.l_epi + 3.0)) ** 2, 0.0, 1.0))
    heart = (s > -18.0) & (r < reach * narrowing + 4.0)
    atrium = (s > -53.0) & (s < 0.0) & (r < 25.0)
    near = heart | atrium
    if not near.any():
        return
    # Image y points down, so anterior (up) is at angle -90 deg; psi grows from septum to anterior.
    psi = _wrap(np.arctan2(v[near], u[near]) - subject.septum_angle)
    points = tissue[near]
    _paint_heart_points(points, s[near], r[near], psi, subject)
    tissue[near] = points


def _paint_heart_points(tissue: np.ndarray, s: np.ndarray, r: np.ndarray, psi: np.ndarray, subject: Subject) -> None:
    """``paint_heart`` on 1-D arrays of points: long-axis position, radius (mm), angle (rad)."""
    r_endo, r_epi, r_epi0 = _radii(s, psi, subject)
    # Right ventricle: a crescent on the septum that tapers to the insertion points.
    taper = np.cos(0.5 * np.pi * np.clip(np.abs(psi) / subject.rv_insertion, 0.0, 1.0)) ** 0.6
    rv_len = subject.rv_length * subject.l_epi
    along = np.sqrt(np.clip(1.0 - (np.maximum(s, 0.0) / rv_len) ** 2, 0.0, 1.0)) * (s > -18.0)
    r_epi_base = np.where(s < 0.0, r_epi0, r_epi)
    rv_depth = subject.rv_depth * taper * along
    rv_outer = r_epi_base + rv_depth
    in_sector = np.abs(psi) < subject.rv_insertion + 0.15
    fat_width = subject.fat_base + subject.fat_groove * (
        np.exp(-((np.abs(psi) - subject.rv_insertion) / 0.25) ** 2) + np.exp(-np.clip(s, 0.0, None) / 6.0) * 0.6)
    tissue[(r < r_epi_base + fat_width) & (s > -8.0) & (s < subject.l_epi + 2.0)] = FAT
    tissue[in_sector & (r < rv_outer + 3.0) & (rv_depth > 1.0)] = MYOCARDIUM
    tissue[in_sector & (r < rv_outer) & (rv_depth > 1.0)] = BLOOD
    # Left atrium above the base (bright blood, not labelled).
    tissue[(np.hypot(r / 24.0, (s + 28.0) / 24.0) < 1.0) & (s < 0.0)] = BLOOD
    in_lv = s >= 0.0
    tissue[in_lv & (r < r_epi)] = LV_MYOCARDIUM
    tissue[in_lv & (r < r_endo)] = LV_BLOOD
    _paint_papillary(tissue, s, r, psi, r_endo, subject)
    depth = (r - r_endo) / np.maximum(r_epi - r_endo, 1e-3)
    for infarct in subject.infarcts:
        _paint_infarct(tissue, s, psi, depth, infarct, subject)


def _paint_papillary(tissue: np.ndarray, s: np.ndarray, r: np.ndarray, psi: np.ndarray, r_endo: np.ndarray,
                     subject: Subject) -> None:
    """Two papillary muscles (anterolateral, posteromedial) attached to the wall at mid-cavity."""
    t = s / subject.l_endo
    for centre in (np.deg2rad(140.0), np.deg2rad(-125.0)):
        radius = subject.papillary_radius * np.sqrt(np.clip(1.0 - ((t - 0.55) / 0.25) ** 2, 0.0, 1.0))
        rho = np.maximum(r_endo - 0.8 * radius, 0.0)
        chord = 2.0 * np.sin(0.5 * _wrap(psi - centre))
        dist2 = (r - rho) ** 2 + r * rho * chord**2
        inside = (dist2 < radius ** 2) & (r < r_endo) & (radius > 0.5)
        tissue[inside] = PAPILLARY


def _paint_infarct(tissue: np.ndarray, s: np.ndarray, psi: np.ndarray, depth: np.ndarray, infarct: Infarct,
                   subject: Subject) -> None:
    """Enhance the sector of the LV wall from the endocardium to the infarct's transmurality."""
    angular = np.abs(_wrap(psi - np.deg2rad(infarct.centre_deg))) / np.deg2rad(infarct.half_width_deg)
    t = s / subject.l_epi
    mid, half = 0.5 * (infarct.start + infarct.end), 0.5 * (infarct.end - infarct.start)
    longitudinal = np.abs(t - mid) / max(half, 1e-3)
    # Wavefront: full transmurality at the centre, thinning to the sector's edges.
    extent = infarct.transmurality * np.clip(1.0 - angular ** 4, 0.0, 1.0) * np.clip(1.0 - longitudinal ** 4, 0.0, 1.0)
    myocardium = tissue == LV_MYOCARDIUM
    scar = myocardium & (depth <= extent) & (extent > 0.08)
    tissue[scar] = SCAR
    if infarct.mvo:
        core = scar & (depth <= 0.45 * extent) & (angular < 0.5) & (longitudinal < 0.6)
        tissue[core] = MVO
