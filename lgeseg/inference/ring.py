"""The myocardial ring of one short-axis slice, in NumPy: how thick its wall is, whether it encloses the blood pool.

Pure NumPy (no SciPy: ``lgeseg_predict`` starts without it); the quality checks of
``lgeseg.inference.quality`` are built on these measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: A wall thinner than this (mm) is implausible: the healthy LV wall is ~6-11 mm, a thinned chronic
#: infarct rarely under 3 mm, and 2 mm is below the ~2.5 voxels that LGE resolves (0.7-1.9 mm pixels).
MIN_WALL_MM = 2.0
#: Myocardial gaps up to this wide (mm) are bridged when deciding whether the myocardium encloses the
#: blood pool (a thinned scar or a partial-volume gap is still a ring; a half ring is not).
RING_GAP_MM = 6.0


def _disc_offsets(radius_mm: float, spacing_yx: Sequence[float]) -> list[tuple[int, int]]:
    """(dy, dx) voxel offsets strictly closer than ``radius_mm`` to the origin."""
    sy, sx = (float(s) for s in spacing_yx)
    ry, rx = int(math.ceil(radius_mm / sy)), int(math.ceil(radius_mm / sx))
    return [(dy, dx) for dy in range(-ry, ry + 1) for dx in range(-rx, rx + 1)
            if (dy * sy) ** 2 + (dx * sx) ** 2 < radius_mm ** 2]


def _dilate(mask: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Binary dilation of a 2D mask by a set of (dy, dx) offsets (outside the array counts as False)."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.pad(mask, pad)
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    for dy, dx in offsets:
        out |= padded[pad + dy:pad + dy + ny, pad + dx:pad + dx + nx]
    return out


def _border(mask: np.ndarray) -> np.ndarray:
    """Voxels of a 2D mask with a 4-neighbour outside it (the array's edge counts as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def thin_ring_samples(blood: np.ndarray, myocardium: np.ndarray, spacing_yx: Sequence[float],
                      min_wall_mm: float = MIN_WALL_MM) -> tuple[int, int]:
    """(thin, total) blood-pool border voxels of one slice, thin where the wall is under ``min_wall_mm``.

    The wall at a border voxel p of the blood pool is thinner than w when a voxel outside the LV
    (neither blood pool nor myocardium) lies closer than w + s to p (s: the mean in-plane spacing;
    a wall of t voxels puts the first outside voxel t + 1 voxels away). Where the blood pool touches
    the outside directly (a gap in the ring) the wall counts as thin.

    Args:
        blood, myocardium: 2D bool masks (y, x) of one slice.
        spacing_yx: (sy, sx) in-plane voxel size, mm.
        min_wall_mm: the thickness threshold, mm.

    Example:
        >>> yy, xx = np.mgrid[:32, :32]
        >>> r = np.hypot(yy - 16, xx - 16)
        >>> thin_ring_samples(r < 6, (r >= 6) & (r < 10), (1.5, 1.5))  # a 6 mm wall: no border voxel is thin
        (0, 32)
        >>> thin_ring_samples(r < 6, (r >= 6) & (r < 7), (1.5, 1.5))  # a 1-voxel (1.5 mm) wall: all are
        (32, 32)
    """
    edge = _border(blood)
    total = int(edge.sum())
    if total == 0:
        return 0, 0
    outside = ~(blood | myocardium)
    reach = min_wall_mm + float(np.mean(spacing_yx))
    near_outside = _dilate(outside, _disc_offsets(reach, spacing_yx))
    return int((edge & near_outside).sum()), total


def _reach_from_edge(free: np.ndarray) -> np.ndarray:
    """Voxels of a 2D mask ``free`` connected (4-neighbours, through ``free``) to the array's edge."""
    reached = np.zeros_like(free)
    for edge in ((0, slice(None)), (-1, slice(None)), (slice(None), 0), (slice(None), -1)):
        reached[edge] = free[edge]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= free
        if np.array_equal(grown, reached):
            return reached
        reached = grown


def enclosed_fraction(blood: np.ndarray, myocardium: np.ndarray, spacing_yx: Sequence[float],
                      max_gap_mm: float = RING_GAP_MM) -> float:
    """Fraction of a slice's blood pool that the myocardium encloses (gaps up to ``max_gap_mm`` bridged).

    A blood-pool voxel is enclosed when no path of 4-neighbours outside the (gap-closed) myocardium
    leads from it to the slice's edge; the voxels the closing covers are left out of the fraction. A
    ventricle's blood pool lies inside its myocardial ring (fraction ~1); a bright disc with myocardium
    on one side only, or none, is open (fraction ~0).

    Args:
        blood, myocardium: 2D bool masks (y, x) of one slice.
        spacing_yx: (sy, sx) in-plane voxel size, mm.
        max_gap_mm: myocardium is dilated by half of this before the test, closing gaps up to this wide.

    Returns:
        The enclosed fraction in [0, 1]; NaN when the slice has no blood pool.

    Example:
        >>> yy, xx = np.mgrid[:40, :40]
        >>> r, angle = np.hypot(yy - 20, xx - 20), np.arctan2(yy - 20, xx - 20)
        >>> ring = (r >= 6) & (r < 10)
        >>> enclosed_fraction(r < 6, ring, (1.5, 1.5))  # a blood pool in a myocardial ring
        1.0
        >>> enclosed_fraction(r < 6, ring & (angle > 0), (1.5, 1.5))  # a half ring encloses nothing
        0.0
    """
    if not blood.any():
        return math.nan
    rows, cols = np.nonzero(blood | myocardium)  # outside this box (plus a margin) every voxel reaches the edge
    # growing each side by half the gap (inclusive) closes a gap of max_gap_mm
    offsets = _disc_offsets(max_gap_mm / 2.0 + 1e-6, spacing_yx) if max_gap_mm > 0 else [(0, 0)]
    margin = 2 + max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    y0, x0 = max(int(rows.min()) - margin, 0), max(int(cols.min()) - margin, 0)
    y1, x1 = min(int(rows.max()) + margin + 1, blood.shape[0]), min(int(cols.max()) + margin + 1, blood.shape[1])
    box_blood, box_myocardium = blood[y0:y1, x0:x1], myocardium[y0:y1, x0:x1]
    wall = _dilate(box_myocardium, offsets) if box_myocardium.any() else box_myocardium
    lumen = box_blood & ~wall  # the blood pool the closed wall leaves free; all of it is inside a ring
    if not lumen.any():
        return 1.0
    return round(1.0 - int((lumen & _reach_from_edge(~wall)).sum()) / int(lumen.sum()), 4)
