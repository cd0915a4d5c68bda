"""Per-case quality flags (``lgeseg.inference.quality``) on planted bad predictions and in ``lgeseg_predict``."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.predict import main as predict_main
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.inference import predict_folder, predict_slices
from lgeseg.inference.quality import (
    COLUMNS,
    MirrorAgreement,
    assess_segmentation,
    is_constant_image,
    read_quality_report,
    thin_ring_samples,
)
from lgeseg.synth import synthesize_case


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, tuple[float, float, float]]:
    """A phantom's reference label map (center 1: 1.5-1.9 mm pixels, 10 mm slices) and its spacing."""
    case = synthesize_case(1, 0, seed=0)
    return case.label, case.geometry.spacing


def _ring_slice(size: int, spacing: float, blood_radius_mm: float, wall_mm: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2) * spacing
    labels = np.zeros((size, size), np.uint8)
    labels[radius < blood_radius_mm + wall_mm] = 2
    labels[radius < blood_radius_mm] = 1
    return labels


def test_a_phantom_reference_passes_every_check(phantom: tuple[np.ndarray, tuple[float, ...]]) -> None:
    labels, spacing = phantom
    quality = assess_segmentation(labels, spacing, "good", mirror_disagreement=0.02)
    assert not quality.flagged and quality.reasons == ()
    assert quality.blood_pool_slices >= 4 and quality.slices_missing_myocardium == 0
    assert 10 < quality.blood_pool_ml < 500 and quality.thin_wall_fraction < 0.2
    assert quality.score == pytest.approx(0.02 + quality.thin_wall_fraction, abs=1e-3)


def test_a_wall_eroded_to_one_voxel_is_flagged_thin(phantom: tuple[np.ndarray, tuple[float, ...]]) -> None:
    labels, spacing = phantom
    blood = labels == 1
    near_blood = np.zeros_like(blood)  # the one-voxel ring around the blood pool (4-neighbours)
    near_blood[:, 1:] |= blood[:, :-1]
    near_blood[:, :-1] |= blood[:, 1:]
    near_blood[:, :, 1:] |= blood[:, :, :-1]
    near_blood[:, :, :-1] |= blood[:, :, 1:]
    thin = np.where(blood, 1, np.where(near_blood & (labels == 2), 2, 0)).astype(np.uint8)
    quality = assess_segmentation(thin, spacing, "thin")
    assert quality.flagged and "thin_wall" in quality.reasons and quality.thin_wall_fraction > 0.9
    assert not quality.missing_myocardium  # a thin ring is still myocardium


def test_myocardium_missing_on_one_slice_is_flagged(phantom: tuple[np.ndarray, tuple[float, ...]]) -> None:
    labels, spacing = phantom
    broken = labels.copy()
    middle = int(np.argmax((labels == 1).sum(axis=(1, 2))))
    broken[middle][broken[middle] == 2] = 0
    quality = assess_segmentation(broken, spacing, "missing")
    assert quality.flagged and quality.reasons == ("missing_myocardium",)
    assert quality.slices_missing_myocardium == 1
    assert quality.score > assess_segmentation(labels, spacing).score + 0.1


def test_a_giant_or_tiny_blood_pool_is_flagged(phantom: tuple[np.ndarray, tuple[float, ...]]) -> None:
    labels, spacing = phantom
    giant = assess_segmentation(labels, tuple(3.0 * s for s in spacing), "giant")  # 27 times the volume
    assert giant.blood_pool_ml > 500 and giant.reasons == ("volume_implausible",)
    tiny = assess_segmentation(labels, tuple(s / 3.0 for s in spacing), "tiny")
    assert tiny.blood_pool_ml < 10 and "volume_implausible" in tiny.reasons


def test_empty_predictions_and_constant_inputs_are_flagged() -> None:
    empty = assess_segmentation(np.zeros((3, 40, 40), np.uint8), (8.0, 1.5, 1.5), "empty", input_constant=True)
    assert empty.reasons == ("input_constant", "no_foreground") and empty.score == 2.0
    assert not empty.volume_implausible and math.isnan(empty.thin_wall_fraction)
    assert is_constant_image(np.zeros((1, 3, 8, 8))) and is_constant_image(np.full((3, 8, 8), 7.0))
    two_channels = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    assert not is_constant_image(two_channels)
    two_channels[1] = 5.0
    assert is_constant_image(two_channels)  # one useless channel is enough


@pytest.mark.parametrize("spacing", [0.75, 1.5])
def test_wall_thickness_threshold_is_two_millimetres(spacing: float) -> None:
    for wall_mm, expect_thin in ((1.2, True), (3.2, False)):
        labels = _ring_slice(128, spacing, blood_radius_mm=25.0, wall_mm=wall_mm)
        thin, total = thin_ring_samples(labels == 1, labels == 2, (spacing, spacing))
        assert total > 20
        assert (thin / total > 0.9) if expect_thin else (thin / total < 0.1), (wall_mm, thin, total)


def test_mirror_disagreement_is_zero_for_flip_invariant_networks_and_nan_without_mirroring() -> None:
    image = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    pointwise = torch.nn.Conv2d(1, 3, kernel_size=1).eval()  # commutes with flips
    agreement = MirrorAgreement()
    predict_slices(pointwise, image, (24, 24), mirroring=True, agreement=agreement)
    assert agreement.disagreement() == 0.0
    asymmetric = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1).eval()
    with torch.no_grad():
        asymmetric.weight.zero_()
        asymmetric.weight[1, 0] = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -2.0]])
    agreement = MirrorAgreement()
    predict_slices(asymmetric, image, (24, 24), mirroring=True, agreement=agreement)
    assert 0.1 < agreement.disagreement() <= 1.0
    unmirrored = MirrorAgreement()
    predict_slices(asymmetric, image, (24, 24), mirroring=False, agreement=unmirrored)
    assert math.isnan(unmirrored.disagreement())


def test_predict_writes_a_quality_report_and_names_flagged_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  make_model: Callable[..., Path]) -> None:
    model_dir = make_model(tmp_path / "model", postprocessing="none")
    geometry = CaseGeometry(shape=(2, 40, 40), spacing=(8.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0),
                            direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    noise = np.random.default_rng(0).normal(100.0, 20.0, geometry.shape).astype(np.float32)
    io.write_image(tmp_path / "in" / "noise_0000.nii.gz", noise, geometry)
    io.write_image(tmp_path / "in" / "blank_0000.nii.gz", np.zeros(geometry.shape, np.float32), geometry)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model_dir),
                         "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "case(s) flagged" in printed and "blank" in printed and "input_constant" in printed
    with (tmp_path / "out" / "qc.csv").open() as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert tuple(next(iter(rows.values()))) == COLUMNS and set(rows) == {"blank", "noise"}
    assert rows["blank"]["input_constant"] == "True" and rows["noise"]["input_constant"] == "False"
    report = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert report["thresholds"]["min_wall_mm"] == 2.0
    assert all(0.0 <= row["mirror_disagreement"] <= 1.0 for row in report["cases"])
    # An unmirrored rerun (other settings: --overwrite) records NaN; the blank input was never mirrored.
    predict_folder(tmp_path / "in", tmp_path / "out", [model_dir], device="cpu", mirroring=False, overwrite=True)
    records = {r.case_id: r for r in read_quality_report(tmp_path / "out")}
    assert set(records) == {"blank", "noise"} and math.isnan(records["noise"].mirror_disagreement)
    assert records["blank"].input_constant and not math.isnan(records["blank"].mirror_disagreement)
