"""PNG montage of mid-ventricular slices: one row per dataset, label contours over the image."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lgeseg.datasets.layout import list_cases
from lgeseg.files.io import read_image, read_label

#: Contour colours: endocardium (label 1 border), epicardium (border of labels 1 + 2).
CONTOUR_COLOURS = {1: "#ffdd00", 2: "#00c8ff"}


def mid_slice(label: np.ndarray) -> int:
    """Index of the slice (axis 0) at the middle of the labelled slices, or the middle slice.

    Example:
        >>> label = np.zeros((6, 4, 4), np.uint8); label[1:4, 1, 1] = 1  # slices 1-3 labelled
        >>> mid_slice(label), mid_slice(np.zeros((6, 4, 4)))
        (2, 3)
    """
    labelled = np.nonzero(label.reshape(label.shape[0], -1).any(axis=1))[0]
    if labelled.size == 0:
        return label.shape[0] // 2
    return int(labelled[len(labelled) // 2])


def crop_around_label(image: np.ndarray, label: np.ndarray, spacing_yx: tuple[float, float],
                      crop_mm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Crop 2D ``image`` and ``label`` (y, x) to ``crop_mm`` around the labelled region's centre.

    ``spacing_yx`` is in mm; ``crop_mm=None`` or an empty label keeps the whole slice.

    Example:
        >>> label = np.zeros((40, 40), np.uint8); label[18:22, 18:22] = 1
        >>> image, cropped = crop_around_label(np.ones((40, 40)), label, spacing_yx=(2.0, 2.0), crop_mm=40.0)
        >>> image.shape, int(cropped.sum())  # 40 mm at 2 mm per pixel, the label kept whole
        ((20, 20), 16)
    """
    if crop_mm is None or not label.any():
        return image, label
    ys, xs = np.nonzero(label)
    slices = []
    for centre, size, spacing in zip((ys.mean(), xs.mean()), label.shape, spacing_yx, strict=True):
        half = int(round(crop_mm / spacing / 2.0))
        start = int(np.clip(round(centre) - half, 0, max(size - 2 * half, 0)))
        slices.append(slice(start, start + 2 * half))
    return image[slices[0], slices[1]], label[slices[0], slices[1]]


def _panels(dataset_dir: Path, cases: int, crop_mm: float | None) -> list[tuple[np.ndarray, np.ndarray, float, str]]:
    panels = []
    for case in list_cases(dataset_dir)[:cases]:
        image, geometry = read_image(case.image_paths[0])
        label = read_label(case.label_path)[0] if case.label_path else np.zeros(image.shape, np.uint8)
        k = mid_slice(label)
        lo, hi = float(image.min()), float(image.max())
        spacing_yx = (geometry.spacing[1], geometry.spacing[2])
        crop, crop_label = crop_around_label(image[k], label[k], spacing_yx, crop_mm)
        title = f"{case.case_id} z={k}\nrange [{lo:.4g}, {hi:.4g}]"
        panels.append((crop, crop_label, spacing_yx[0] / spacing_yx[1], title))
    return panels


def write_montage(dataset_dirs: Sequence[str | Path], png_path: str | Path, cases_per_dataset: int = 4,
                  crop_mm: float | None = 200.0) -> Path:
    """Write a PNG of the mid slice of the first cases of each dataset, with label contours.

    Args:
        dataset_dirs: raw dataset folders (one montage row each).
        png_path: output file.
        cases_per_dataset: columns.
        crop_mm: square field shown around the LV, mm (None: the whole slice).

    Returns:
        ``png_path``. Each panel is windowed to its own 0.5-99.5 percentile range, as a reader
        would; its title gives the case, slice and the whole volume's intensity range. Yellow:
        endocardium (blood pool), cyan: epicardium (outer border of the myocardium).

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import generate_multicenter
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folders = generate_multicenter(tmp.name, cases_per_center=1, centers=(1, 2), in_plane_size=32)
        >>> write_montage(folders, Path(tmp.name) / "montage.png", cases_per_dataset=1).stat().st_size > 0
        True
        >>> tmp.cleanup()
    """
    import matplotlib  # deferred: matplotlib loads only when a montage is drawn

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [(Path(d).name, _panels(Path(d), cases_per_dataset, crop_mm)) for d in dataset_dirs]
    ncols = max([len(p) for _, p in rows] + [1])
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.4 * ncols, 2.6 * len(rows)), squeeze=False)
    for r, (name, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(panels):
                continue
            image, label, aspect, title = panels[c]
            lo, hi = np.percentile(image, [0.5, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect)
            for mask, colour in ((label == 1, CONTOUR_COLOURS[1]), (label > 0, CONTOUR_COLOURS[2])):
                if mask.any():
                    ax.contour(mask, levels=[0.5], colors=colour, linewidths=1.0)
            ax.set_title(f"{name}: {title}", fontsize=7)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=90, format="png")
    plt.close(fig)
    # A 256-colour palette keeps the file small (grey images, a few contour colours).
    from PIL import Image  # deferred: with matplotlib (PIL comes with it)

    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(png_path, optimize=True)
    return png_path
