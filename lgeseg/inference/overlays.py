"""Overlay pictures: predicted contours over every slice, for a clinician to check without a viewer.

One PNG per case, slices in a grid (apex and base wherever they are in z order), the image in grey,
the endocardial contour (blood pool boundary) in red and the epicardial contour (outer boundary of
blood pool + myocardium) in green, as in the paper's Figure 12. All slices are shown, also those
without a prediction, so missed slices are visible; the view is zoomed on the predicted ventricle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lgeseg.core.atomic import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # deferred: matplotlib loads only with --overlays

ENDOCARDIUM_COLOR = "#ff3030"
EPICARDIUM_COLOR = "#30ff60"


def _view_box(segmentation: np.ndarray, margin: float = 0.6, minimum: int = 48) -> tuple[slice, slice]:
    """In-plane (y, x) slices around the segmentation of all slices, widened by ``margin`` of its size."""
    _, ny, nx = segmentation.shape
    found = np.argwhere(segmentation.any(axis=0))
    if found.size == 0:
        return slice(0, ny), slice(0, nx)
    result = []
    for lo, hi, size in zip(found.min(0), found.max(0) + 1, (ny, nx), strict=True):
        half = max((hi - lo) * (1 + margin), minimum) / 2
        centre = (lo + hi) / 2
        result.append(slice(max(0, int(centre - half)), min(size, int(math.ceil(centre + half)))))
    return result[0], result[1]


def render_overlay(image: np.ndarray, segmentation: np.ndarray, spacing: Sequence[float], title: str = "") -> Figure:
    """Draw the overlay figure.

    Args:
        image: (z, y, x) intensities (one channel).
        segmentation: uint8 (z, y, x) label map (1 blood pool, 2 myocardium) on the same grid.
        spacing: mm (z, y, x); sets the in-plane aspect ratio.
        title: figure title (the case id).

    Returns:
        a ``matplotlib.figure.Figure`` (not attached to pyplot).

    Example:
        >>> yy, xx = np.mgrid[:32, :32]
        >>> r = np.hypot(yy - 16, xx - 16)
        >>> segmentation = np.stack([np.where(r < 6, 1, np.where(r < 10, 2, 0))] * 3).astype(np.uint8)
        >>> figure = render_overlay(r[None].repeat(3, axis=0), segmentation, (8.0, 1.5, 1.5), "p1")
        >>> len([ax for ax in figure.axes if ax.images])  # one panel per slice (a 2 x 2 grid, one left empty)
        3
    """
    from matplotlib.figure import Figure  # deferred: matplotlib loads only with --overlays

    nz = image.shape[0]
    cols = math.ceil(math.sqrt(nz))
    rows = math.ceil(nz / cols)
    ys, xs = _view_box(segmentation)
    low, high = np.percentile(image, (1, 99)) if image.size else (0.0, 1.0)
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    aspect = float(spacing[1]) / float(spacing[2])
    for index, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if index >= nz:
            continue
        ax.imshow(image[index, ys, xs], cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="bilinear")
        view = segmentation[index, ys, xs]
        for mask, color in ((view == 1, ENDOCARDIUM_COLOR), (view > 0, EPICARDIUM_COLOR)):
            if mask.any() and not mask.all():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=color, linewidths=1.0)
        ax.set_title(f"z={index}", fontsize=8)
    fig.suptitle(f"{title}  (red: endocardium, green: epicardium)", fontsize=9)
    fig.tight_layout()
    return fig


def write_overlay(path: str | Path, image: np.ndarray, segmentation: np.ndarray, spacing: Sequence[float],
                  title: str = "") -> None:
    """Render the overlay (see ``render_overlay``) and write it to ``path`` (PNG) atomically.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> segmentation = np.zeros((2, 32, 32), np.uint8)
        >>> segmentation[:, 10:20, 10:20] = 2
        >>> segmentation[:, 13:17, 13:17] = 1
        >>> image = np.random.default_rng(0).random((2, 32, 32))
        >>> write_overlay(Path(tmp.name) / "p1.png", image, segmentation, (8.0, 1.5, 1.5))
        >>> (Path(tmp.name) / "p1.png").read_bytes()[1:4]  # a PNG file
        b'PNG'
        >>> tmp.cleanup()
    """
    path = Path(path)
    figure = render_overlay(image, segmentation, spacing, title)
    with atomic_output(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
