"""Preprocessing: crop/normalize/resample, the way back to the raw grid, the stored cases and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lgeseg.cli.plan_and_preprocess import main
from lgeseg.core import records
from lgeseg.core.errors import OutputConflictError
from lgeseg.files import io
from lgeseg.planning import plan_topology
from lgeseg.preprocessing import (
    load_case_arrays,
    load_preprocessed,
    preprocess_arrays,
    revert_to_original,
    run_preprocessing,
)
from lgeseg.preprocessing.resample import resample_inplane, resample_label_inplane

SPACING = (9.0, 1.7, 1.3)  # anisotropic, y != x
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
Phantom = Callable[..., tuple[np.ndarray, np.ndarray]]


def _geometry() -> records.CaseGeometry:
    """The phantom's grid: (4, 56, 64) voxels of ``SPACING`` (preprocess_arrays reads only shape and spacing)."""
    return records.CaseGeometry((4, 56, 64), SPACING, (0.0, 0.0, 0.0), IDENTITY)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, make_raw_dataset: Callable[..., Path]) -> Path:
    """A raw dataset ``center1`` (center "A") of 2 phantom cases at ``SPACING``, oblique; do not modify."""
    return make_raw_dataset(tmp_path_factory.mktemp("raw"), "center1", [SPACING, SPACING], center="A")


def _plan(spacing=(9.0, 1.0, 1.0), scheme="minmax", channels=1) -> records.Plan:
    return records.Plan(
        name="2d", preset="default", target_spacing=spacing, patch_size=(64, 64), batch_size=2,
        normalization=records.NormalizationConfig(scheme=scheme),
        topology=plan_topology((64, 64), channels, 3, base_features=8, max_features=32),
        labels=dict(records.LABELS),
    )


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    return 2 * np.sum((a == value) & (b == value)) / (np.sum(a == value) + np.sum(b == value))


def test_reverted_case_matches_the_raw_label_grid_and_labels(tmp_path: Path, raw: Path) -> None:
    pre = tmp_path / "pre"
    run_preprocessing([raw], pre, _plan(spacing=(9.0, 1.2, 1.4)))
    record, npz = load_preprocessed(pre)[0]
    _, label_pp = load_case_arrays(npz)
    assert record.shape_after_resampling[1] > record.shape_after_crop[1]  # y: 1.7 mm -> 1.2 mm
    assert record.shape_after_resampling[2] < record.shape_after_crop[2]  # x: 1.3 mm -> 1.4 mm
    onehot = np.stack([(label_pp == k).astype(np.float32) for k in range(3)])
    back = np.argmax(revert_to_original(onehot, record), axis=0).astype(np.uint8)
    original, original_geometry = io.read_label(raw / "labelsTr" / "center1_000.nii.gz")
    assert record.original == original_geometry  # stored exactly as read
    assert back.shape == original.shape
    io.write_label(tmp_path / "back.nii.gz", back, record.original)
    back, back_geometry = io.read_label(tmp_path / "back.nii.gz")
    assert io.geometry_mismatch(back_geometry, original_geometry) == []  # NIfTI keeps cosines as float32
    for value in (1, 2):
        assert _dice(back, original, value) >= 0.98


def test_preprocess_arrays_crops_normalizes_and_resamples_like_scipy(lv_phantom: Phantom) -> None:
    image, label = lv_phantom(np.random.default_rng(1))
    geometry = _geometry()
    image_pp, label_pp, box, shape_after_crop = preprocess_arrays(image[None], geometry, _plan(), label)
    assert box[0] == (0, 4) and box[1][0] > 0 and box[2][1] < 64  # body box, all slices kept
    assert shape_after_crop == tuple(end - start for start, end in box)
    expected_yx = (round(shape_after_crop[1] * 1.7), round(shape_after_crop[2] * 1.3))
    assert image_pp.shape == (1, 4) + expected_yx and label_pp.shape == (4,) + expected_yx
    assert image_pp.dtype == np.float32 and label_pp.dtype == np.uint8
    cropped = image[box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]]
    low, high = np.percentile(cropped, (0.5, 99.5))
    normalized = (np.clip(cropped, low, high) - low) / (high - low)
    zoom = [1.0, expected_yx[0] / shape_after_crop[1], expected_yx[1] / shape_after_crop[2]]
    reference = ndimage.zoom(normalized, zoom, order=3, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(image_pp[0], reference, atol=1e-4)


def test_zscore_gives_zero_mean_unit_std_before_resampling(lv_phantom: Phantom) -> None:
    image, _ = lv_phantom(np.random.default_rng(2))
    image_pp, label_pp, _, _ = preprocess_arrays(image[None], _geometry(), _plan(spacing=SPACING, scheme="zscore"))
    assert label_pp is None
    assert abs(float(image_pp.mean())) < 1e-3 and abs(float(image_pp.std()) - 1) < 1e-3


def test_label_resampling_never_invents_labels() -> None:
    label = np.zeros((2, 30, 30), dtype=np.uint8)
    label[:, 10:20, 10:20] = 2
    label[:, 14:16, 14:16] = 0  # background hole inside myocardium: no 1 may appear at the border
    out = resample_label_inplane(label, (47, 41), (0, 1, 2))
    assert set(np.unique(out)) <= {0, 2}
    assert set(np.unique(resample_label_inplane(label, (13, 11), (0, 1, 2)))) <= {0, 2}


def test_label_resampling_matches_argmax_of_interpolated_one_hot() -> None:
    rng = np.random.default_rng(6)
    label = ndimage.zoom(rng.integers(0, 3, size=(3, 8, 9)), (1, 5, 5), order=0).astype(np.uint8)
    label[:, :6] = 0
    out = resample_label_inplane(label, (53, 31), (0, 1, 2))
    onehot = [ndimage.zoom((label == k).astype(np.float32), (1, 53 / 40, 31 / 45), order=1, mode="nearest",
                           grid_mode=True) for k in range(3)]
    reference = np.argmax(np.stack(onehot), axis=0)
    assert np.mean(out == reference) > 0.999  # exact ties may break either way


def test_crop_box_grows_to_keep_labels_outside_the_body(lv_phantom: Phantom) -> None:
    image, label = lv_phantom(np.random.default_rng(3))
    label[:, 0:2, 0:2] = 1  # labelled voxels in the dark corner
    _, label_pp, box, _ = preprocess_arrays(image[None], _geometry(), _plan(spacing=SPACING), label)
    assert box[1][0] == 0 and box[2][0] == 0
    assert label_pp.sum() == label.sum()  # same spacing: nothing resampled, nothing lost


def test_unknown_label_value_is_an_error_naming_it(lv_phantom: Phantom) -> None:
    image, label = lv_phantom(np.random.default_rng(4))
    label[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        preprocess_arrays(image[None], _geometry(), _plan(), label)


def test_identity_resampling_returns_the_input() -> None:
    array = np.random.default_rng(5).normal(size=(3, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(resample_inplane(array, (5, 7), 3), array)


def test_rerun_skips_up_to_date_cases_and_redoes_changed_or_interrupted_ones(tmp_path: Path, raw: Path) -> None:
    raw = Path(shutil.copytree(raw, tmp_path / "raw" / "center1"))  # a source file is touched below
    pre = tmp_path / "pre"
    paths = run_preprocessing([raw], pre, _plan())
    assert [p.name for p in paths] == ["center1_000.npz", "center1_001.npz"]
    assert (pre / "center1" / "dataset.json").is_file() and (pre / "plans.json").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    run_preprocessing([raw], pre, _plan())
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    (pre / "center1" / "center1_001.json").unlink()  # interrupted between npz and json
    later = max(stamps.values()) / 1e9 + 5
    os.utime(raw / "imagesTr" / "center1_000_0000.nii.gz", (later, later))  # source edited
    run_preprocessing([raw], pre, _plan())
    assert all(p.stat().st_mtime_ns != stamps[p] for p in paths)
    assert len(load_preprocessed(pre)) == 2
    new_stamps = {p: p.stat().st_mtime_ns for p in paths}
    with pytest.raises(OutputConflictError, match="another plan"):  # another plan: refused without overwrite
        run_preprocessing([raw], pre, _plan(scheme="zscore"))
    assert {p: p.stat().st_mtime_ns for p in paths} == new_stamps
    run_preprocessing([raw], pre, _plan(scheme="zscore"), overwrite=True)  # with it, everything is redone
    assert all(p.stat().st_mtime_ns != new_stamps[p] for p in paths)


def test_two_workers_give_the_same_cases_as_one(tmp_path: Path, raw: Path) -> None:
    one = run_preprocessing([raw], tmp_path / "one", _plan(), num_workers=1)
    two = run_preprocessing([raw], tmp_path / "two", _plan(), num_workers=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(load_case_arrays(a)[0], load_case_arrays(b)[0])


def test_cli_plans_preprocesses_and_reuses_plans_for_another_center(tmp_path: Path, capsys, raw: Path,
                                                                    make_raw_dataset: Callable[..., Path]) -> None:
    first = raw
    second = make_raw_dataset(tmp_path / "raw", "center2", [SPACING], center="B", seed=2)
    assert main(["-d", str(first), "-o", str(tmp_path / "pre1"), "--gpu-memory", "4"]) == 0
    table = capsys.readouterr().out
    assert "patch (y, x) px" in table and "memory estimate" in table and "of budget 4.00 GB" in table
    plan = records.Plan.from_dict(records.load_json(tmp_path / "pre1" / "plans.json"))
    assert plan.memory.total <= 4 * 1024**3
    fingerprint = json.loads((tmp_path / "pre1" / "fingerprint.json").read_text())
    assert fingerprint["summary"]["num_cases"] == 2
    assert main(["-d", str(second), "-o", str(tmp_path / "pre2"), "--plans-from", str(tmp_path / "pre1")]) == 0
    reused = records.Plan.from_dict(records.load_json(tmp_path / "pre2" / "plans.json"))
    assert reused == plan
    assert [r.center for r, _ in load_preprocessed(tmp_path / "pre2")] == ["B"]


def test_cli_refuses_an_invalid_dataset_with_a_clear_error(tmp_path: Path, capsys, raw: Path) -> None:
    raw = Path(shutil.copytree(raw, tmp_path / "raw" / "center1"))  # broken below
    (raw / "labelsTr" / "center1_000.nii.gz").unlink()
    broken = raw / "imagesTr" / "center1_001_0000.nii.gz"
    broken.write_bytes(b"not an image")
    assert main(["-d", str(raw), "-o", str(tmp_path / "pre"), "--gpu-memory", "4"]) == 1
    err = capsys.readouterr().err
    assert "center1_001_0000.nii.gz" in err
    assert not (tmp_path / "pre" / "plans.json").exists()


@pytest.mark.parametrize(("labels", "code"), [
    ({"background": 0, "scar": 1}, 1),  # other classes: refused
    ({"background": 0, "LV_bloodpool": 1, "LV_myocardium": 2}, 0),  # ACDC's names for the same classes: accepted
])
def test_plans_from_with_other_label_values_is_refused_and_with_other_names_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: Path, labels: dict[str, int], code: int) -> None:
    records.save_json(dataclasses.replace(_plan(), labels=labels), tmp_path / "model" / "plans.json")
    assert main(["-d", str(raw), "-o", str(tmp_path / "pre"), "--plans-from", str(tmp_path / "model")]) == code
    written = tmp_path / "pre" / "plans.json"
    if code:
        assert "labels" in capsys.readouterr().err and not written.exists()
    else:
        assert records.load_json(written)["labels"] == labels


def test_preprocessing_keeps_a_declared_ignore_label_out_of_the_classes(
        tmp_path: Path, make_raw_dataset: Callable[..., Path]) -> None:
    from lgeseg.datasets.layout import load_dataset_info
    from lgeseg.datasets.validate import validate_dataset
    from lgeseg.training.training_data import open_training_data
    from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

    labels = {**records.LABELS, "ignore": 3}
    dataset = make_raw_dataset(tmp_path / "raw", "target", [SPACING, SPACING], labels=labels)
    path = dataset / "labelsTr" / "target_000.nii.gz"
    label, geometry = io.read_label(path)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    heart = label > 0
    ring = (ndimage.binary_dilation(heart, in_plane, iterations=2)
            & ~ndimage.binary_erosion(heart, in_plane, iterations=2))
    io.write_label(path, np.where(ring, 3, label).astype(np.uint8), geometry)  # an unsure band around the LV
    info = load_dataset_info(dataset)
    assert info.labels == dict(records.LABELS) and info.ignore_label == 3
    assert [p for p in validate_dataset(dataset) if p.severity == "error"] == []

    plan, npzs = plan_and_preprocess([dataset], tmp_path / "pre", preset="cpu")
    assert plan.labels == dict(records.LABELS) and plan.topology.num_classes == 3  # no output for "ignore"
    kept = load_case_arrays(npzs[0])[1]
    assert set(np.unique(kept)) == {0, 1, 2, 3}  # resampled as one more one-hot channel: carried, not dropped
    assert set(np.unique(load_case_arrays(npzs[1])[1])) == {0, 1, 2}  # never invented
    assert open_training_data(tmp_path / "pre").ignore_label == 3


@pytest.mark.parametrize("value", [2, 300])
def test_preprocess_refuses_an_ignore_label_that_is_not_above_the_classes(tmp_path: Path, value: int) -> None:
    from lgeseg.datasets.layout import read_dataset_json

    path = tmp_path / "dataset.json"
    records.save_json({"channel_names": {"0": "LGE"}, "labels": {**records.LABELS, "ignore": value},
                       "numTraining": 1, "file_ending": ".nii.gz"}, path)
    declared, problems = read_dataset_json(path)
    assert declared.ignore_label is None and any("highest value" in p.message for p in problems)


def test_preprocess_arrays_resamples_the_ignore_label_with_the_classes(lv_phantom: Phantom) -> None:
    image, label = lv_phantom(np.random.default_rng(5))
    label[:, 20:24, 20:40] = 3
    with pytest.raises(ValueError, match=r"\[3\]"):  # undeclared: refused as before
        preprocess_arrays(image[None], _geometry(), _plan(), label)
    _, label_pp, _, _ = preprocess_arrays(image[None], _geometry(), _plan(), label, ignore_label=3)
    assert set(np.unique(label_pp)) == {0, 1, 2, 3}
    area_raw = np.sum(label == 3) * SPACING[1] * SPACING[2]  # mm², the plan's grid is 1 x 1 mm in-plane
    assert 0.8 < area_raw / np.sum(label_pp == 3) < 1.25  # about the same area ignored after resampling
