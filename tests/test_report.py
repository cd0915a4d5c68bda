"""lgeseg_report: volumes, mass, AHA wall thickness, quality flags, montages, CSV and HTML."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from lgeseg import io
from lgeseg.cli.report import main as report_main
from lgeseg.inference.quality import assess_segmentation, write_quality_report
from lgeseg.records import CaseGeometry
from lgeseg.report import measure_case
from lgeseg.synth import generate_case

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SPACING = (8.0, 0.5, 0.5)


def _ring_stack(slices: int = 6, wall_mm: float = 8.0, anterior_wall_mm: float = 12.0) -> np.ndarray:
    """A blood-pool disc (20 mm) in a myocardial ring, thicker over +-30 degrees around the anterior direction.

    With the identity orientation the septum faces (-x, -y) and the anterior wall (+x, -y) (LPS axes).
    """
    n = 140
    yy, xx = (np.mgrid[:n, :n] - n / 2 + 0.5) * SPACING[1]
    radius = np.hypot(xx, yy)
    anterior = np.array([1.0, -1.0]) / math.sqrt(2.0)
    angle = np.degrees(np.arccos(np.clip((xx * anterior[0] + yy * anterior[1]) / np.maximum(radius, 1e-9), -1, 1)))
    outer = np.where(angle < 30, 20.0 + anterior_wall_mm, 20.0 + wall_mm)
    ring = np.zeros((n, n), np.uint8)
    ring[radius < outer] = 2
    ring[radius < 20.0] = 1
    return np.repeat(ring[None], slices, axis=0)


def test_volumes_mass_and_wall_thickness_per_aha_segment_of_a_known_ring() -> None:
    labels = _ring_stack()
    measures = measure_case(labels, SPACING, IDENTITY)
    voxel_ml = np.prod(SPACING) / 1000
    assert measures.blood_pool_ml == pytest.approx(np.count_nonzero(labels == 1) * voxel_ml)
    assert measures.myocardium_mass_g == pytest.approx(np.count_nonzero(labels == 2) * voxel_ml * 1.05)
    assert measures.ring_slices == 6 and measures.segments_note == ""
    for anterior in (1, 7, 13):  # basal, mid and apical anterior segments hold the thick wall
        assert measures.segments_mm[anterior] == pytest.approx(12.0, abs=0.6)
    for other in (2, 3, 4, 5, 9, 10, 11, 14, 15):
        assert measures.segments_mm[other] == pytest.approx(8.0, abs=0.6)
    assert measures.wall_mean_mm == pytest.approx(8.0, abs=0.6)


def test_too_few_slices_or_an_unknown_orientation_give_no_segments_and_say_why() -> None:
    measures = measure_case(_ring_stack(slices=2), SPACING, IDENTITY)
    assert "at least 3" in measures.segments_note and all(math.isnan(v) for v in measures.segments_mm.values())
    assert measures.wall_mean_mm == pytest.approx(8.0, abs=0.6)
    axial_to_septum = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # slice plane holds z and y only
    assert "orientation" in measure_case(_ring_stack(), SPACING, axial_to_septum).segments_note


def test_report_writes_page_csv_and_a_montage_per_case_with_the_quality_flags(tmp_path: Path) -> None:
    image, label, geometry = generate_case(1, 0, seed=3, in_plane_size=64, num_slices=6)
    io.write_image(tmp_path / "images" / "p1_0000.nii.gz", image, geometry)
    io.write_label(tmp_path / "pred" / "p1.nii.gz", label, geometry)
    empty_geometry = CaseGeometry(shape=(3, 20, 20), spacing=(8.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0),
                                  direction=IDENTITY)
    io.write_label(tmp_path / "pred" / "p2.nii.gz", np.zeros(empty_geometry.shape, np.uint8), empty_geometry)
    io.write_image(tmp_path / "images" / "p2_0000.nii.gz", np.ones(empty_geometry.shape, np.float32),
                   empty_geometry)
    recorded = assess_segmentation(label, geometry.spacing, "p1", mirror_disagreement=0.5)  # as lgeseg_predict
    write_quality_report([recorded], tmp_path / "pred")
    assert report_main([str(tmp_path / "pred"), "-i", str(tmp_path / "images")]) == 0
    report = tmp_path / "pred" / "report"
    rows = {row["case"]: row for row in csv.DictReader((report / "report.csv").open())}
    voxel_ml = np.prod(geometry.spacing) / 1000
    assert float(rows["p1"]["edv_ml"]) == pytest.approx(np.count_nonzero(label == 1) * voxel_ml, abs=0.05)
    assert rows["p1"]["qc_flagged"] == "yes" and "mirror_unstable" in rows["p1"]["qc_reasons"]  # from qc.json
    assert rows["p2"]["qc_flagged"] == "yes" and "no_foreground" in rows["p2"]["qc_reasons"]  # assessed here
    assert "input_constant" in rows["p2"]["qc_reasons"]
    page = (report / "index.html").read_text()
    assert "montages/p1.png" in page and "check: " in page and "<script" not in page
    assert (report / "montages" / "p1.png").stat().st_size > 1000 and (report / "montages" / "p2.png").is_file()


def test_an_image_on_another_grid_is_refused_by_name(tmp_path: Path) -> None:
    geometry = CaseGeometry(shape=(3, 20, 20), spacing=(8.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0), direction=IDENTITY)
    io.write_label(tmp_path / "pred" / "a.nii.gz", np.zeros(geometry.shape, np.uint8), geometry)
    moved = CaseGeometry(shape=geometry.shape, spacing=geometry.spacing, origin=(5.0, 0.0, 0.0), direction=IDENTITY)
    io.write_image(tmp_path / "images" / "a_0000.nii.gz", np.zeros(geometry.shape, np.float32), moved)
    assert report_main([str(tmp_path / "pred"), "-i", str(tmp_path / "images")]) == 1
    assert not (tmp_path / "pred" / "report" / "index.html").exists()
