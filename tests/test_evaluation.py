"""Dice, HD95, volumes and the folder evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lgeseg.cli.evaluate import main as evaluate_main
from lgeseg.core.records import CaseGeometry
from lgeseg.evaluation.metrics import dice, evaluate_case, evaluate_folders, hd95, structures_from_labels
from lgeseg.files import io

SPACING = (5.0, 1.5, 0.7)


def _block() -> np.ndarray:
    label = np.zeros((4, 10, 10), dtype=np.uint8)
    label[1:3, 3:7, 3:7] = 1  # 2 x 4 x 4 = 32 voxels
    return label


def test_dice_with_itself_is_one_and_shifted_copy_matches_hand_value() -> None:
    ref = _block()
    assert dice(ref, ref, 1) == 1.0
    shifted = np.roll(ref, 1, axis=2)  # one voxel along x: overlap 2 x 4 x 3 = 24
    assert dice(shifted, ref, 1) == pytest.approx(2 * 24 / (32 + 32))


def test_hd95_uses_the_spacing_of_the_shifted_axis() -> None:
    ref = _block() > 0
    # All 32 voxels are surface (two slices thick); 8 of them move 1 voxel off the other surface.
    assert hd95(np.roll(ref, 1, axis=2), ref, SPACING) == pytest.approx(0.7)
    assert hd95(np.roll(ref, 1, axis=1), ref, SPACING) == pytest.approx(1.5)
    assert hd95(np.roll(ref, 1, axis=0), ref, SPACING) == pytest.approx(5.0)


def test_empty_structures_follow_the_documented_convention() -> None:
    ref = _block()
    empty = np.zeros_like(ref)
    row = evaluate_case(empty, ref, SPACING)
    assert row["dice_blood_pool"] == 0.0 and math.isnan(row["hd95_mm_blood_pool"])
    assert row["dice_myocardium"] == 1.0 and row["hd95_mm_myocardium"] == 0.0  # absent in both
    assert row["bp_volume_ref_ml"] == pytest.approx(32 * 5.0 * 1.5 * 0.7 / 1000)
    assert row["abs_volume_diff_ml_lv"] == pytest.approx(row["bp_volume_ref_ml"])


GEOMETRY = CaseGeometry(shape=(4, 10, 10), spacing=SPACING, origin=(0.0, 0.0, 0.0),
                        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def _write_pair(root: Path, case: str, pred: np.ndarray, ref: np.ndarray, geometry: CaseGeometry) -> None:
    io.write_label(root / "pred" / f"{case}.nii.gz", pred, geometry)
    io.write_label(root / "ds" / "labelsTr" / f"{case}.nii.gz", ref, geometry)


def test_evaluate_folders_writes_csv_and_summary_without_silent_nan(tmp_path: Path) -> None:
    ref = _block()
    ref[1:3, 2, 3:7] = 2
    _write_pair(tmp_path, "good", ref, ref, GEOMETRY)
    _write_pair(tmp_path, "missed", np.zeros_like(ref), ref, GEOMETRY)
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ds", tmp_path / "metrics")
    lines = (tmp_path / "metrics" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("case,dice_blood_pool")
    on_disk = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    bp = on_disk["structures"]["blood_pool"]
    assert bp["dice"]["mean"] == pytest.approx(0.5)
    assert bp["hd95_mm"]["mean"] == 0.0 and bp["hd95_mm"]["hd95_undefined"] == 1
    assert bp["pred_empty_only"] == 1
    assert summary["n_cases"] == 2


def test_geometry_mismatch_names_the_case(tmp_path: Path) -> None:
    io.write_label(tmp_path / "pred" / "p7.nii.gz", _block(), GEOMETRY)
    moved = CaseGeometry(shape=GEOMETRY.shape, spacing=GEOMETRY.spacing, origin=(10.0, 0.0, 0.0),
                         direction=GEOMETRY.direction)
    io.write_label(tmp_path / "ref" / "p7.nii.gz", _block(), moved)
    with pytest.raises(ValueError, match="p7.*origin"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out")


def test_cli_prints_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_pair(tmp_path, "a", _block(), _block(), GEOMETRY)
    assert evaluate_main(["-p", str(tmp_path / "pred"), "-r", str(tmp_path / "ds"), "-o", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "blood_pool" in out and "1.000" in out


@pytest.mark.parametrize(("labels", "whole_lv"), [
    ({"background": 0, "LV_bloodpool": 1, "LV_myocardium": 2}, True),
    ({"background": 0, "LV cavity": 1, "MYO": 2}, True),
    ({"background": 0, "scar": 1, "myocardium": 2}, False),
    ({"background": 0, "blood_pool": 2, "myocardium": 1}, False),
])
def test_whole_lv_is_scored_under_other_datasets_names_for_the_two_structures(labels: dict, whole_lv: bool) -> None:
    structures = structures_from_labels(labels)
    assert ("lv" in structures) is whole_lv
    ref = np.zeros((2, 8, 8), np.uint8)
    ref[:, 2:6, 2:6], ref[:, 3:5, 3:5] = 2, 1
    assert ("myo_mass_ref_g" in evaluate_case(ref, ref, (5.0, 1.0, 1.0), structures)) is whole_lv  # clinical too
