"""Fingerprint: per-case geometry and foreground statistics, dataset and per-center summaries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lgeseg.core import records
from lgeseg.files import io
from lgeseg.preprocessing.fingerprint import HISTOGRAM_BINS, extract_fingerprint

MakeRaw = Callable[..., Path]


def test_case_entries_hold_geometry_crop_and_foreground_stats(tmp_path: Path, make_raw_dataset: MakeRaw) -> None:
    folder = make_raw_dataset(tmp_path, "siteA", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.25)], center="A")
    fingerprint = extract_fingerprint([folder])
    first = fingerprint.cases[0]
    assert first.spacing == (8.0, 1.4, 1.4) and first.shape == (4, 56, 64)
    # the phantom's body box (tests/conftest.py: rows 6..50, columns 5..58)
    assert first.crop_box == ((0, 4), (6, 50), (5, 58)) and first.shape_after_crop == (4, 44, 53)
    image, _ = io.read_image(folder / "imagesTr" / "siteA_000_0000.nii.gz")
    label, _ = io.read_label(folder / "labelsTr" / "siteA_000.nii.gz")
    values = image[label > 0]
    stats = first.foreground[0]
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-5)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-4)
    assert stats["p99_5"] == pytest.approx(np.percentile(values, 99.5), rel=1e-5)
    assert (stats["min"], stats["max"]) == (pytest.approx(values.min()), pytest.approx(values.max()))
    assert sum(stats["histogram_counts"]) == values.size and len(stats["histogram_counts"]) == HISTOGRAM_BINS
    assert first.label_voxels == {str(v): int((label == v).sum()) for v in (0, 1, 2)}


def test_summaries_per_dataset_and_per_center(tmp_path: Path, make_raw_dataset: MakeRaw) -> None:
    a = make_raw_dataset(tmp_path, "siteA", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.2), (9.0, 1.3, 1.3)], center="A")
    b = make_raw_dataset(tmp_path, "siteB", [(5.0, 0.8, 0.8)], brightness=3.0, seed=1)
    fingerprint = extract_fingerprint([a, b])
    summary = fingerprint.summary
    assert summary["num_cases"] == 4
    assert summary["spacing"]["median"] == [8.5, 1.25, 1.25]
    assert summary["spacing"]["min"] == [5.0, 0.8, 0.8] and summary["spacing"]["max"] == [10.0, 1.4, 1.4]
    assert set(fingerprint.centers) == {"A", "siteB"}  # no center in dataset.json: the folder name
    assert fingerprint.centers["A"]["num_cases"] == 3
    raw_a = fingerprint.centers["A"]["histogram"][0]["raw_quantiles"]
    raw_b = fingerprint.centers["siteB"]["histogram"][0]["raw_quantiles"]
    assert raw_b[7] > 2 * raw_a[7]  # the brighter center's median intensity
    histogram = summary["histogram"][0]
    assert sum(histogram["density"]) == pytest.approx(1.0, abs=1e-4)
    assert histogram["normalized_quantiles"] == sorted(histogram["normalized_quantiles"])
    assert [d["center"] for d in fingerprint.datasets] == ["A", None]
    records.save_json(fingerprint, tmp_path / "fingerprint.json")
    assert records.load_json(tmp_path / "fingerprint.json")["summary"]["num_cases"] == 4  # the JSON layout
    assert records.load_fingerprint(tmp_path / "fingerprint.json") == fingerprint  # a typed record that round-trips


def test_two_workers_give_the_same_fingerprint(tmp_path: Path, make_raw_dataset: MakeRaw) -> None:
    folder = make_raw_dataset(tmp_path, "siteA", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.2)], center="A")
    assert extract_fingerprint([folder], num_workers=2) == extract_fingerprint([folder], num_workers=1)


def test_datasets_with_different_labels_are_refused(tmp_path: Path, make_raw_dataset: MakeRaw) -> None:
    a = make_raw_dataset(tmp_path, "siteA", [(8.0, 1.4, 1.4)], center="A")
    b = make_raw_dataset(tmp_path, "siteB", [(8.0, 1.4, 1.4)], center="B", labels={"background": 0, "lv": 1, "myo": 2})
    with pytest.raises(ValueError, match="labels"):
        extract_fingerprint([a, b])
