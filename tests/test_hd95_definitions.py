"""HD95 as documented (issue 25, item 9): MONAI's definition exactly, not MedPy's pooled percentile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lgeseg.evaluation.metrics import hd95

DOCS = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"
SPACING = (8.0, 1.25, 1.25)


def _directed_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distances (mm) from every surface voxel of ``source`` to the surface of ``target`` (6-neighbour erosion)."""
    footprint = ndimage.generate_binary_structure(3, 1)
    source_border = source ^ ndimage.binary_erosion(source, structure=footprint)
    target_border = target ^ ndimage.binary_erosion(target, structure=footprint)
    return ndimage.distance_transform_edt(~target_border, sampling=SPACING)[source_border]


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """A reference disc stack and a prediction with a spur: the two directed distance sets differ a lot."""
    yy, xx = np.mgrid[:48, :48]
    disc = np.hypot(yy - 24, xx - 24) < 10
    ref = np.repeat(disc[None], 4, axis=0)
    pred = ref.copy()
    pred[1:3, 20:28, 33:44] = True  # a spur outside the reference
    return pred, ref


def test_hd95_is_the_larger_directed_percentile_as_monai_not_medpys_pooled_one() -> None:
    pred, ref = _pair()
    to_ref, to_pred = _directed_distances(pred, ref), _directed_distances(ref, pred)
    monai = max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))  # compute_hausdorff_distance, directed=False
    medpy = np.percentile(np.hstack((to_ref, to_pred)), 95)  # medpy.metric.binary.hd95
    assert hd95(pred, ref, SPACING) == pytest.approx(monai, abs=1e-9)
    assert monai - medpy > 1.0  # MedPy's pooled percentile is smaller here
    text = DOCS.read_text()
    assert "MONAI" in text and "pools the distances of both directions" in text and "as MedPy/MONAI" not in text
