"""Enhancement (scar) burden of the segmented myocardium, estimated from the LGE image: n-SD and FWHM.

Pure NumPy. Arrays are (z, y, x); spacing is (z, y, x) mm; the direction is ITK's (LPS patient axes).

- **Myocardial segments**: the slices with myocardium are split into basal, mid and apical thirds (the
  base being the end with the larger blood pool, as for the wall thickness); each myocardial voxel gets
  the sector of its angle around its slice's blood-pool centroid (six 60-degree sectors in the basal and
  mid thirds, four 90-degree ones in the apical third). With a short-axis orientation these are the AHA
  segments 1-16 (``measures.in_plane_basis``, to within about 30 degrees); without one the sectors are
  counted from the image axes and named by level and number.
- **Remote myocardium**: the segment with the lowest mean intensity among those with at least
  ``MIN_SEGMENT_VOXELS`` voxels (healthy myocardium is the darkest tissue of an LGE image; choosing the
  darkest segment automatically replaces the region a reader would draw).
- **n-SD**: enhanced = myocardial voxels brighter than the remote mean + ``n_sd`` x its SD (default 5 SD;
  n from 2 to 6 is in use, and the choice changes the burden severalfold: Flett et al., JACC Cardiovasc
  Imaging 2011;4:150-156 compared 2-6 SD with FWHM).
- **FWHM** (full width at half maximum; Amado et al., J Am Coll Cardiol 2004;44:2383-2389): enhanced =
  myocardial voxels brighter than half the maximum myocardial intensity (taken as the 99.9th percentile,
  so that one noisy voxel does not set it). FWHM assumes enhancement next to well-nulled (dark) healthy
  myocardium: it is 0 when the n-SD method finds no enhancement, and not given (NaN, with a note) when
  half the maximum lies within the remote myocardium's intensities (below its mean + ``FWHM_MIN_SD`` SD),
  where it would count healthy myocardium as scar.
- **Burden**: enhanced voxels / myocardial voxels, in % (the same fraction of the myocardial mass at
  1.05 g/mL), and their volume in mL.

These are estimates: they inherit every error of the myocardial contour (a contour that includes blood
pool adds bright voxels), depend on the inversion time and on the image being a magnitude image (a
phase-sensitive (PSIR) image with negative values shifts the FWHM threshold), and were not compared
with manual scar quantification here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from lgeseg.report.measures import AHA_SEGMENTS, FOUR_SECTORS, SIX_SECTORS, in_plane_basis, slice_levels

#: Remote-myocardium threshold of the n-SD method, in standard deviations above its mean.
DEFAULT_N_SD = 5.0
#: Fewest voxels a segment needs to be a candidate remote region.
MIN_SEGMENT_VOXELS = 20
#: Percentile of the myocardial intensities taken as the FWHM maximum.
FWHM_MAX_PERCENTILE = 99.9
#: FWHM is given only when half the maximum is above the remote mean + this many SDs.
FWHM_MIN_SD = 2.0


@dataclasses.dataclass(frozen=True)
class EnhancementEstimate:
    """Scar burden of one case (see the module docstring for the methods; NaN where not estimated).

    Attributes:
        nsd_percent: enhanced myocardium by the n-SD method, % of the myocardial volume (= % of its mass).
        nsd_ml: the same as a volume, mL.
        fwhm_percent: enhanced myocardium by the FWHM method, % of the myocardial volume.
        fwhm_ml: the same as a volume, mL.
        n_sd: the n of the n-SD method.
        remote_segment: the segment taken as remote myocardium, e.g. ``"AHA 9 mid inferoseptal"``.
        remote_mean, remote_sd: its mean and standard deviation of intensity.
        note: why nothing was estimated, or "".
    """

    nsd_percent: float
    nsd_ml: float
    fwhm_percent: float
    fwhm_ml: float
    n_sd: float
    remote_segment: str
    remote_mean: float
    remote_sd: float
    note: str = ""


def _not_estimated(note: str, n_sd: float) -> EnhancementEstimate:
    return EnhancementEstimate(math.nan, math.nan, math.nan, math.nan, n_sd, "", math.nan, math.nan, note)


def _segment_names(basis_known: bool) -> dict[tuple[str, int], str]:
    """(level, sector index) -> segment name; sector indices follow ``SIX_SECTORS``/``FOUR_SECTORS`` order."""
    names: dict[tuple[str, int], str] = {}
    for level in ("basal", "mid", "apical"):
        sectors = FOUR_SECTORS if level == "apical" else SIX_SECTORS
        for index, sector in enumerate(sectors):
            number = next(n for n, lev, name in AHA_SEGMENTS if lev == level and name == sector)
            names[(level, index)] = (f"AHA {number} {level} {sector}" if basis_known
                                     else f"{level} sector {index + 1} of {len(sectors)}")
    return names


def myocardial_segments(labels: np.ndarray, spacing: Sequence[float], direction: Sequence[float],
                        blood_label: int = 1, myocardium_label: int = 2) -> tuple[np.ndarray, dict[int, str]]:
    """Assign every myocardial voxel to a segment (see the module docstring).

    Args:
        labels: uint8 (z, y, x) label map.
        spacing: mm (z, y, x).
        direction: ITK direction cosines (9 values, LPS); a non-short-axis one gives sectors from the image axes.
        blood_label, myocardium_label: label values.

    Returns:
        (int16 (z, y, x) segment index per myocardial voxel, -1 elsewhere; index -> segment name).

    Example:
        >>> yy, xx = np.mgrid[:40, :40] - 19.5
        >>> ring = np.where(np.hypot(yy, xx) < 8, 1, np.where(np.hypot(yy, xx) < 12, 2, 0)).astype(np.uint8)
        >>> segments, names = myocardial_segments(np.repeat(ring[None], 6, 0), (8, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> sorted(int(name.split()[1]) for name in names.values()) == list(range(1, 17))  # AHA 1-16
        True
    """
    blood, myocardium = labels == blood_label, labels == myocardium_label
    basis = in_plane_basis(direction)
    septal, anterior = basis if basis is not None else (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    slices = [int(z) for z in np.flatnonzero(myocardium.any(axis=(1, 2)))]
    segments = np.full(labels.shape, -1, np.int16)
    names = _segment_names(basis is not None)
    index_of = {key: i for i, key in enumerate(names)}
    if not slices:
        return segments, {}
    levels = slice_levels(slices, blood) if len(slices) >= 3 else {"mid": slices}
    degrees_of = {"basal": SIX_SECTORS, "mid": SIX_SECTORS, "apical": FOUR_SECTORS}
    for level, zs in levels.items():
        sectors = list(degrees_of[level].values())
        for z in zs:
            centre = np.argwhere(blood[z] if blood[z].any() else myocardium[z]).mean(axis=0)
            ys, xs = np.nonzero(myocardium[z])
            offset = np.stack([(xs - centre[1]) * spacing[2], (ys - centre[0]) * spacing[1]], axis=1)
            angle = np.degrees(np.arctan2(offset @ anterior, offset @ septal)) % 360
            sector = np.zeros(ys.size, np.int16)
            for k, (lo, hi) in enumerate(sectors):
                sector[((angle - lo) % 360) < (hi - lo)] = k
            segments[z, ys, xs] = [index_of[(level, int(k))] for k in sector]
    used = {int(i) for i in np.unique(segments[segments >= 0])}
    return segments, {i: name for i, name in enumerate(names.values()) if i in used}


def estimate_enhancement(image: np.ndarray, labels: np.ndarray, spacing: Sequence[float],
                         direction: Sequence[float], n_sd: float = DEFAULT_N_SD, blood_label: int = 1,
                         myocardium_label: int = 2) -> EnhancementEstimate:
    """Estimate the enhanced (scar) fraction of the segmented myocardium by the n-SD and FWHM methods.

    Args:
        image: float (z, y, x) LGE image on the label map's grid (magnitude image).
        labels: uint8 (z, y, x) label map (the myocardium includes scar).
        spacing: mm (z, y, x).
        direction: ITK direction cosines (9 values), which name the segments.
        n_sd: threshold of the n-SD method, SDs above the remote mean.
        blood_label, myocardium_label: label values.

    Returns:
        ``EnhancementEstimate``; NaN values and a ``note`` when there is no myocardium, no segment of at
        least ``MIN_SEGMENT_VOXELS`` voxels, or the image is constant.

    Example:
        >>> yy, xx = np.mgrid[:40, :40] - 19.5
        >>> ring = np.where(np.hypot(yy, xx) < 8, 1, np.where(np.hypot(yy, xx) < 12, 2, 0)).astype(np.uint8)
        >>> labels = np.repeat(ring[None], 6, 0)
        >>> image = np.random.default_rng(0).normal(100, 5, labels.shape)  # healthy myocardium ~100 +- 5
        >>> image[(labels == 2) & (xx > 6)] = 400  # a bright lateral scar
        >>> estimate = estimate_enhancement(image, labels, (8, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> truth = 100 * ((labels == 2) & (xx > 6)).sum() / (labels == 2).sum()
        >>> bool(round(estimate.nsd_percent, 1) == round(truth, 1)), estimate.remote_segment.startswith("AHA")
        (True, True)
    """
    if image.shape != labels.shape:
        raise ValueError(f"image shape {image.shape} differs from the label map's {labels.shape}: the image must "
                         "be the one the labels were predicted on")
    myocardium = labels == myocardium_label
    count = int(np.count_nonzero(myocardium))
    if count == 0:
        return _not_estimated("no myocardium segmented", n_sd)
    values = image[myocardium].astype(np.float64)
    if float(values.max() - values.min()) == 0.0:
        return _not_estimated("constant image in the myocardium", n_sd)
    segments, names = myocardial_segments(labels, spacing, direction, blood_label, myocardium_label)
    stats = {i: (float(image[segments == i].mean()), float(image[segments == i].std()))
             for i in names if np.count_nonzero(segments == i) >= MIN_SEGMENT_VOXELS}
    if not stats:
        return _not_estimated(f"no myocardial segment of at least {MIN_SEGMENT_VOXELS} voxels", n_sd)
    remote = min(stats, key=lambda i: stats[i][0])
    mean, sd = stats[remote]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    nsd = int(np.count_nonzero(values > mean + n_sd * sd))
    half_maximum = 0.5 * float(np.percentile(values, FWHM_MAX_PERCENTILE))
    fwhm, note = (0.0, "") if nsd else (0.0, "no enhancement above the n-SD threshold")
    if nsd and half_maximum <= mean + FWHM_MIN_SD * sd:
        fwhm, note = math.nan, (f"FWHM not given: half the maximum ({half_maximum:.4g}) is within {FWHM_MIN_SD:g} SD "
                                f"of the remote myocardium ({mean:.4g} +- {sd:.4g}): healthy myocardium not nulled")
    elif nsd:
        fwhm = float(np.count_nonzero(values > half_maximum))
    return EnhancementEstimate(
        nsd_percent=100.0 * nsd / count, nsd_ml=nsd * voxel_ml, fwhm_percent=100.0 * fwhm / count,
        fwhm_ml=fwhm * voxel_ml, n_sd=n_sd, remote_segment=names[remote], remote_mean=mean, remote_sd=sd,
        note=note)
