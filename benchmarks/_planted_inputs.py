"""Issue 24's planted input defects, made in one place for the benchmark that tabulates them
(``benchmarks/reliability_inputs.py``) and the tests that check each one (``tests/test_reliability_inputs.py``).

Each function plants one defect on tiny synthetic data the caller gives (or makes it in memory); nothing
here reads ``../shared/data``. The benchmark imports this file as ``_planted_inputs`` (its folder is on
``sys.path``); the tests load it with the fixture ``planted_inputs`` (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.core.records import CaseGeometry, load_json, save_json
from lgeseg.files import io
from lgeseg.synth import dicom_series as synth_dicom

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def raising(error: BaseException) -> Callable[..., None]:
    """A stand-in for a function that fails with ``error`` (a fault planted with monkeypatch or setattr)."""

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


def write_dicom_series(folder: Path, volume: np.ndarray, uid: str = "1.2.3.7") -> None:
    """One MR slice file per z of ``volume`` (identity orientation, 8 mm slices), as a scanner exports them."""
    geometry = CaseGeometry(volume.shape, (8.0, 1.5, 1.5), (0.0, 0.0, 0.0), IDENTITY)
    folder.mkdir(parents=True)
    synth_dicom.write_dicom_series(folder, volume, geometry, uid, 7, "LGE", {"0020|000d": "1.2.3"})


def truncate_to_half(path: Path) -> None:
    """Cut ``path`` to half its size, as a copy or download stopped midway leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def discs_with_arcs(radius_mm: float = 20.0) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Three bright discs labelled blood pool, each with myocardium on ~60% of its border (no heart).

    Returns:
        (uint8 labels (8, 160, 160), spacing (10, 1.6, 1.6) mm).
    """
    spacing, size = 1.6, 160
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((8, size, size), np.uint8)
    for cy, cx in ((50, 50), (110, 60), (80, 120)):
        radius, angle = np.hypot(yy - cy, xx - cx) * spacing, np.arctan2(yy - cy, xx - cx)
        labels[:, (radius >= radius_mm) & (radius < radius_mm + 8) & (angle > -0.5)] = 2
        labels[:, radius < radius_mm] = 1
    return labels, (10.0, spacing, spacing)


def thick_myocardium() -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 25 mm blood pool in a 55 mm thick myocardium (~1800 mL over 10 slices): only the wall is implausible.

    Returns:
        (uint8 labels (10, 160, 160), spacing (10, 1.6, 1.6) mm).
    """
    spacing, size = 1.6, 160
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size // 2, xx - size // 2) * spacing
    labels = np.stack([np.where(radius < 25, 1, np.where(radius < 80, 2, 0))] * 10).astype(np.uint8)
    return labels, (10.0, spacing, spacing)


def write_nan_into_label(path: Path, voxel: tuple[int, int, int]) -> None:
    """Rewrite the label map ``path`` as float32 with NaN at ``voxel`` (ITK reads a NIfTI NaN as 0)."""
    labels, geometry = io.read_label(path)
    with_nan = labels.astype(np.float32)
    with_nan[voxel] = np.nan
    io.write_image(path, with_nan, geometry)


def write_skewed_copy(source: Path, target: Path) -> None:
    """Write the image ``source`` to ``target`` with a non-orthonormal direction (a stretched column, no rotation)."""
    image, geometry = io.read_image(source)
    skewed = list(geometry.direction)
    skewed[0] *= 1.7
    sitk.WriteImage(io.to_sitk(image, CaseGeometry(geometry.shape, geometry.spacing, geometry.origin, tuple(skewed))),
                    str(target))


def add_label_to_model_json(model: Path) -> None:
    """Give the model folder's ``model.json`` a fourth label ("scar": 3) its 3-class network does not have."""
    info = load_json(model / "model.json")
    info["labels"] = {**info["labels"], "scar": 3}
    save_json(info, model / "model.json")
