"""Largest-connected-component postprocessing and the choice of variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lgeseg.cli.postprocess import main as postprocess_main
from lgeseg.core.records import CaseGeometry
from lgeseg.evaluation.postprocessing import (
    keep_largest_component,
    label_components,
    largest_component_mask,
    select_postprocessing,
)
from lgeseg.files import io


def _ventricle(shape: tuple[int, int, int] = (6, 40, 40)) -> np.ndarray:
    """A stack of rings: blood pool (1) disc inside a myocardium (2) annulus, centred in every slice."""
    _, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    radius = np.hypot(yy - ny / 2, xx - nx / 2)
    ring = np.zeros((ny, nx), dtype=np.uint8)
    ring[radius < 12] = 2
    ring[radius < 8] = 1
    label = np.zeros(shape, dtype=np.uint8)
    label[1:-1] = ring
    return label


def test_distant_island_is_removed_and_ventricle_kept() -> None:
    truth = _ventricle()
    noisy = truth.copy()
    noisy[2:4, 1:4, 1:4] = 2  # planted island far from the ventricle
    noisy[0, 36:39, 36:39] = 1
    result = keep_largest_component(noisy)
    np.testing.assert_array_equal(result, truth)
    assert result.dtype == np.uint8
    assert noisy[2, 2, 2] == 2, "input must not be modified"


def test_components_touching_at_a_corner_are_one_and_ties_go_to_the_first_in_scan_order() -> None:
    mask = np.zeros((3, 6, 6), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # corner contact across slices: one component
    mask[2, 4:6, 4] = True  # two voxels, as many as the first component
    labels, count = label_components(mask)
    assert count == 2 and labels[0, 0, 0] == labels[1, 1, 1] == 1 and (labels[2, 4:6, 4] == 2).all()
    assert (labels[~mask] == 0).all()
    kept = largest_component_mask(mask)
    assert kept[0, 0, 0] and kept[1, 1, 1] and not kept[2].any()
    assert label_components(np.zeros((2, 3, 3), bool))[1] == 0


def test_per_label_removes_label_fragment_inside_the_ventricle() -> None:
    truth = _ventricle()
    noisy = truth.copy()
    noisy[3, 20, 9] = 1  # a blood-pool voxel inside the myocardium ring, cut off from the blood pool
    assert keep_largest_component(noisy)[3, 20, 9] == 1  # connected to the LV through the myocardium
    per_label = keep_largest_component(noisy, per_label=True)
    assert per_label[3, 20, 9] == 0
    per_label[3, 20, 9] = truth[3, 20, 9]
    np.testing.assert_array_equal(per_label, truth)  # everything else untouched


def test_empty_map_stays_empty() -> None:
    empty = np.zeros((3, 8, 8), dtype=np.uint8)
    assert not keep_largest_component(empty, per_label=True).any()


def test_select_postprocessing_prefers_lcc_only_when_it_helps() -> None:
    truth = _ventricle()
    noisy = truth.copy()
    noisy[2:4, 1:5, 1:5] = 2
    assert select_postprocessing([noisy], [truth]) == "lcc"
    assert select_postprocessing([truth], [truth]) == "none"  # a tie goes to the simpler variant


def test_cli_keeps_geometry_refuses_same_folder_and_skips_existing(tmp_path: Path) -> None:
    geometry = CaseGeometry(shape=(6, 40, 40), spacing=(8.0, 1.3, 1.3), origin=(1.0, -2.0, 3.0),
                            direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    noisy = _ventricle()
    noisy[2, 1:3, 1:3] = 2
    (tmp_path / "in").mkdir()
    io.write_label(tmp_path / "in" / "case1.nii.gz", noisy, geometry)
    assert postprocess_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "in")]) == 1
    assert postprocess_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    out, out_geometry = io.read_label(tmp_path / "out" / "case1.nii.gz")
    assert io.geometry_mismatch(out_geometry, geometry) == []
    np.testing.assert_array_equal(out, _ventricle())
    stamp = (tmp_path / "out" / "case1.nii.gz").stat().st_mtime_ns
    postprocess_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert (tmp_path / "out" / "case1.nii.gz").stat().st_mtime_ns == stamp
