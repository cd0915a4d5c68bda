"""Fingerprint: per-case geometry and foreground statistics, dataset and per-center summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lgeseg import io, records
from lgeseg.fingerprint import HISTOGRAM_BINS, extract_fingerprint


def _write_case(folder: Path, case_id: str, rng: np.random.Generator, spacing: tuple[float, float, float],
                brightness: float) -> None:
    shape = (3, 40, 48)
    image = np.abs(rng.normal(0, 2, size=shape)).astype(np.float32)
    image[:, 6:34, 5:44] += 50 * brightness  # body
    label = np.zeros(shape, dtype=np.uint8)
    label[:, 15:25, 18:28] = 2
    label[:, 18:22, 21:25] = 1
    image[label == 1] = 200 * brightness + rng.normal(0, 5, size=int((label == 1).sum()))
    image[label == 2] = 40 * brightness
    geometry = records.CaseGeometry(shape=shape, spacing=spacing, origin=(0.0, 0.0, 0.0),
                                    direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    io.write_image(folder / "imagesTr" / f"{case_id}_0000.nii.gz", image, geometry)
    io.write_label(folder / "labelsTr" / f"{case_id}.nii.gz", label, geometry)


def _dataset(root: Path, name: str, center: str | None, spacings: list[tuple[float, float, float]],
             brightness: float = 1.0, labels: dict[str, int] | None = None) -> Path:
    rng = np.random.default_rng(len(name))
    folder = root / name
    for index, spacing in enumerate(spacings):
        _write_case(folder, f"{name}_{index:03d}", rng, spacing, brightness)
    meta = {"channel_names": {"0": "LGE"}, "labels": labels or records.LABELS, "numTraining": len(spacings),
            "file_ending": ".nii.gz"}
    if center:
        meta["center"] = center
    records.save_json(meta, folder / "dataset.json")
    return folder


def test_case_entries_hold_geometry_crop_and_foreground_stats(tmp_path: Path) -> None:
    folder = _dataset(tmp_path, "siteA", "A", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.25)])
    fingerprint = extract_fingerprint([folder])
    first = fingerprint.cases[0]
    assert first.spacing == (8.0, 1.4, 1.4) and first.shape == (3, 40, 48)
    assert first.crop_box == ((0, 3), (6, 34), (5, 44)) and first.shape_after_crop == (3, 28, 39)
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


def test_summaries_per_dataset_and_per_center(tmp_path: Path) -> None:
    a = _dataset(tmp_path, "siteA", "A", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.2), (9.0, 1.3, 1.3)])
    b = _dataset(tmp_path, "siteB", None, [(5.0, 0.8, 0.8)], brightness=3.0)
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


def test_two_workers_give_the_same_fingerprint(tmp_path: Path) -> None:
    folder = _dataset(tmp_path, "siteA", "A", [(8.0, 1.4, 1.4), (10.0, 1.2, 1.2)])
    assert extract_fingerprint([folder], num_workers=2) == extract_fingerprint([folder], num_workers=1)


def test_datasets_with_different_labels_are_refused(tmp_path: Path) -> None:
    a = _dataset(tmp_path, "siteA", "A", [(8.0, 1.4, 1.4)])
    b = _dataset(tmp_path, "siteB", "B", [(8.0, 1.4, 1.4)], labels={"background": 0, "lv": 1, "myo": 2})
    with pytest.raises(ValueError, match="labels"):
        extract_fingerprint([a, b])
