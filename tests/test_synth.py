"""The synthetic multi-center LGE phantom: determinism, labels, LGE contrast, Table 1 grids, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lgeseg.cli.synth import main as synth_main
from lgeseg.core.errors import OutputConflictError
from lgeseg.datasets.layout import list_cases, load_dataset_info
from lgeseg.files.io import geometry_mismatch, read_image, read_label
from lgeseg.synth import CENTERS, generate_case, generate_multicenter, get_profile, synthesize_case
from lgeseg.synth.phantom import case_rng, sample_acquisition

# Table 1 of the paper: in-plane spacing (mm), slice spacing (mm), number of slices; center 2 moved to the
# real myops_lge scans of the same hospital (a few 5 mm slices 12-23 mm apart).
TABLE_1 = {
    1: ((1.37, 1.88), (8.0, 13.0), (4, 10)),
    2: ((0.73, 0.76), (12.0, 23.0), (2, 6)),
    3: ((1.48, 1.68), (10.0, 10.0), (8, 15)),
    4: ((1.18, 1.18), (5.0, 5.0), (18, 24)),
}


@pytest.fixture(scope="module")
def full_size_cases():
    """One case per center on the center's own grid."""
    return {c: synthesize_case(c, 0, seed=0) for c in CENTERS}


def _mid_slices(label: np.ndarray) -> list[int]:
    labelled = np.nonzero(label.reshape(label.shape[0], -1).any(axis=1))[0]
    n = len(labelled)
    return [int(k) for k in labelled[n // 3: max(n - n // 3, n // 3 + 1)]]


def test_same_seed_same_case_other_seed_other_case():
    image_a, label_a, geometry_a = generate_case(2, 1, seed=7, in_plane_size=64, num_slices=4)
    image_b, label_b, geometry_b = generate_case(2, 1, seed=7, in_plane_size=64, num_slices=4)
    image_c, _, _ = generate_case(2, 1, seed=8, in_plane_size=64, num_slices=4)
    assert image_a.dtype == np.float32 and label_a.dtype == np.uint8
    assert image_a.shape == label_a.shape == (4, 64, 64)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(label_a, label_b)
    assert geometry_a == geometry_b
    assert not np.array_equal(image_a, image_c)


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_labels_are_lv_classes_and_myocardium_encloses_blood_pool(full_size_cases, center):
    label = full_size_cases[center].label
    assert set(np.unique(label).tolist()) == {0, 1, 2}
    mids = _mid_slices(label)
    assert mids
    for k in mids:
        blood = label[k] == 1
        assert blood.sum() > 50, f"slice {k}: blood pool too small"
        # The blood pool never touches the background: a myocardial ring lies all around it.
        assert not (ndimage.binary_dilation(blood) & (label[k] == 0)).any(), f"slice {k}"
        # Papillary muscles are labelled blood pool, so the blood pool has no holes.
        assert np.array_equal(ndimage.binary_fill_holes(blood), blood), f"slice {k}"


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_lge_contrast_bright_blood_dark_myocardium_brighter_scar(center):
    scarred = None
    for index in range(8):  # center 2's few slices can miss an infarct: look a little further
        case = synthesize_case(center, index, seed=0, in_plane_size=96)
        healthy = (case.label == 2) & ~case.scar
        assert case.image[case.label == 1].mean() > case.image[healthy].mean(), f"case {index}"
        if scarred is None and case.scar.sum() > 20:
            scarred = case
        if scarred is not None and index >= 1:
            break
    assert scarred is not None, "no case with scar among the first eight"
    healthy = (scarred.label == 2) & ~scarred.scar
    assert scarred.image[scarred.scar].mean() > 1.5 * scarred.image[healthy].mean()


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_grids_follow_table_1(full_size_cases, center):
    (sp_lo, sp_hi), (th_lo, th_hi), (n_lo, n_hi) = TABLE_1[center]
    profile = get_profile(center)
    acquisitions = [sample_acquisition(profile, case_rng(0, center, i)) for i in range(30)]
    case = full_size_cases[center]
    acquisitions.append(case.acquisition)
    for acq in acquisitions:
        slice_spacing, row, col = acq.spacing
        assert sp_lo - 1e-6 <= row == col <= sp_hi + 1e-6
        assert th_lo <= slice_spacing <= th_hi and acq.slice_thickness in profile.slice_thickness_mm
        assert n_lo <= acq.shape[0] <= n_hi
        assert (acq.shape[0] - 1) * slice_spacing <= 70.0 or slice_spacing == acq.slice_thickness
        assert max(acq.shape[1:]) <= 512
    assert case.geometry.spacing == case.acquisition.spacing
    assert case.image.shape == case.label.shape == tuple(case.geometry.shape)


def test_centers_differ_in_myocardium_blood_ratio_and_range():
    ratios, maxima = {}, {}
    for center in CENTERS:
        values = []
        for index in range(2):
            case = synthesize_case(center, index, seed=0, in_plane_size=80, num_slices=5)
            image = (case.image - case.image.min()) / (case.image.max() - case.image.min())
            healthy = (case.label == 2) & ~case.scar
            values.append(np.median(image[healthy]) / np.median(image[case.label == 1]))
            maxima[center] = max(maxima.get(center, 0.0), float(case.image.max()))
        ratios[center] = float(np.median(values))
    # Center 2 (long TI, late imaging) leaves the myocardium grey; 1 and 4 null it well.
    assert ratios[2] > 2.0 * ratios[1] and ratios[2] > 2.0 * ratios[4]
    # Vendor ranges: 8-bit at center 2, up to 12-bit at center 1, rescaled floats at center 4.
    assert maxima[2] <= 255.0 < maxima[1] <= 4095.0
    assert maxima[4] < 10.0


def test_unknown_center_is_rejected_with_the_accepted_values():
    with pytest.raises(ValueError, match="center1"):
        get_profile("center9")


def test_cli_writes_four_raw_datasets(tmp_path: Path):
    out = tmp_path / "synth"
    assert synth_main([str(out), "--cases-per-center", "2", "--seed", "3", "--in-plane-size", "48"]) == 0
    assert (out / "montage.png").stat().st_size > 1000
    for center in (1, 2, 3, 4):
        folder = out / f"center{center}"
        assert (folder / "imagesTr" / f"c{center}_000_0000.nii.gz").is_file()
        assert (folder / "labelsTr" / f"c{center}_001.nii.gz").is_file()
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["channel_names"] == {"0": "LGE"}
        assert meta["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2}
        assert meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
        assert meta["center"] == f"center{center}" and meta["vendor"] and meta["field_strength"]
        info = load_dataset_info(folder)
        cases = list_cases(folder)
        assert info.center == f"center{center}" and [c.case_id for c in cases] == [f"c{center}_000", f"c{center}_001"]
        image, geometry = read_image(cases[1].image_paths[0])
        label, label_geometry = read_label(cases[1].label_path)
        expected_image, expected_label, expected_geometry = generate_case(center, 1, seed=3, in_plane_size=48)
        np.testing.assert_allclose(image, expected_image, rtol=1e-6)
        np.testing.assert_array_equal(label, expected_label)
        assert geometry_mismatch(geometry, expected_geometry) == []
        assert geometry_mismatch(label_geometry, geometry) == []
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert read_image(out / "center1" / "imagesTr" / "c1_000_0000.nii.gz")[1].direction != identity


def test_generate_multicenter_refuses_a_foreign_dataset(tmp_path: Path):
    folder = tmp_path / "center1"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"name": "somebody else's data"}))
    with pytest.raises(OutputConflictError, match="dataset.json"):  # a refused output, not a bad input
        generate_multicenter(tmp_path, cases_per_center=1, centers=(1,), in_plane_size=32)
