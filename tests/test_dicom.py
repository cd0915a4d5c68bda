"""DICOM input: series written by SimpleITK in the test, read back with their exact geometry."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg import io
from lgeseg.cli.convert import main as convert_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.dicom import find_series, read_series, select_series
from lgeseg.records import CaseGeometry, load_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def _oblique(shape: tuple[int, int, int], spacing: tuple[float, float, float],
             origin: tuple[float, float, float]) -> CaseGeometry:
    a, b = np.deg2rad(30.0), np.deg2rad(-20.0)  # a short-axis-like oblique plane
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return CaseGeometry(shape=shape, spacing=spacing, origin=origin, direction=tuple((rz @ rx).ravel().tolist()))


def write_dicom_series(folder: Path, volume: np.ndarray, geometry: CaseGeometry, uid: str, number: int,
                       description: str) -> None:
    """Write ``volume`` (z, y, x) as one MR slice file per z, the way a scanner export looks."""
    image = io.to_sitk(volume.astype(np.int16), geometry)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir(parents=True, exist_ok=True)
    # GDCM's writer switches the process's C locale to "C" (ASCII): later tests that decode a subprocess's
    # UTF-8 output with the locale's encoding would fail, so the locale is put back afterwards.
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        _write_slices(writer, folder, image, volume.shape[0], geometry, uid, number, description)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)


def _write_slices(writer: sitk.ImageFileWriter, folder: Path, image: sitk.Image, depth: int, geometry: CaseGeometry,
                  uid: str, number: int, description: str) -> None:
    direction = geometry.direction
    orientation = "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6],
                                                    direction[1], direction[4], direction[7]))
    for z in range(depth):
        slice_image = image[:, :, z]
        position = image.TransformIndexToPhysicalPoint((0, 0, z))
        tags = {"0008|0060": "MR", "0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0008|0018": f"{uid}.{z + 1}",
                "0020|000d": STUDY_UID, "0020|000e": uid, "0020|0011": str(number), "0008|103e": description,
                "0020|0013": str(z + 1), "0020|0037": orientation,
                "0020|0032": "\\".join(f"{v:.10f}" for v in position),
                "0018|0050": f"{geometry.spacing[0]:.6f}", "0008|0070": "Phantom Medical", "0018|0087": "1.5",
                "0020|0052": f"{STUDY_UID}.7", "0010|0010": "Phantom^One", "0010|0020": "P001",
                "0010|0030": "19600101", "0010|0040": "O", "0008|0020": "20260101", "0008|0030": "120000",
                "0020|0010": "1", "0008|0050": "A1", "0008|0090": "", "0008|0021": "20260101"}
        for key, value in tags.items():
            slice_image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(slice_image)


@pytest.fixture(scope="module")
def pacs_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseGeometry]]:
    """Two series in nested folders (LGE short axis and a localizer), as a PACS export arrives."""
    root = tmp_path_factory.mktemp("pacs")
    rng = np.random.default_rng(0)
    lge = _oblique((5, 36, 32), (8.0, 1.25, 1.40625), (-40.25, 12.5, 101.0))
    scout = _oblique((3, 20, 24), (6.0, 2.0, 2.0), (10.0, -5.5, 3.25))
    volume = rng.integers(0, 900, size=lge.shape)
    write_dicom_series(root / "patient1" / "study" / "series12", volume, lge, "1.2.3.4.12", 12, "SAX LGE PSIR")
    write_dicom_series(root / "patient1" / "study" / "series2", rng.integers(0, 500, size=scout.shape), scout,
                       "1.2.3.4.2", 2, "localizer")
    np.save(root / "lge.npy", volume)
    return root, {"SAX_LGE_PSIR_s12": lge, "localizer_s2": scout}


def test_series_are_found_named_and_read_with_their_exact_geometry(pacs_export: tuple) -> None:
    root, geometries = pacs_export
    series = find_series(root)
    assert [s.case_id for s in series] == ["localizer_s2", "SAX_LGE_PSIR_s12"]  # by series number
    for s in series:
        array, geometry = read_series(s)
        expected = geometries[s.case_id]
        assert geometry.shape == expected.shape
        np.testing.assert_allclose(geometry.spacing, expected.spacing, rtol=0, atol=1e-6)
        np.testing.assert_allclose(geometry.origin, expected.origin, rtol=0, atol=1e-6)
        np.testing.assert_allclose(geometry.direction, expected.direction, rtol=0, atol=1e-6)
    lge, _ = read_series(series[1])
    np.testing.assert_array_equal(lge, np.load(root / "lge.npy"))  # slice order and voxel values
    assert [s.case_id for s in select_series(series, ["*lge*"])] == ["SAX_LGE_PSIR_s12"]
    assert [s.case_id for s in select_series(series, ["1.2.3.4.2"])] == ["localizer_s2"]
    with pytest.raises(ValueError, match="matches no series.*SAX LGE PSIR"):
        select_series(series, ["T2"])


def test_predict_reads_a_dicom_folder_and_writes_nifti_on_the_series_grid(
        tmp_path: Path, pacs_export: tuple, tiny_model: Path, capsys: pytest.CaptureFixture) -> None:
    root, geometries = pacs_export
    assert predict_main(["-i", str(root), "--list-series"]) == 0
    assert "SAX LGE PSIR" in capsys.readouterr().out
    assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--series", "12",
                         "--disable_tta"]) == 0
    label, geometry = io.read_label(tmp_path / "out" / "SAX_LGE_PSIR_s12.nii.gz")
    assert io.geometry_mismatch(geometry, geometries["SAX_LGE_PSIR_s12"], tolerance=1e-6) == []
    assert not (tmp_path / "out" / "localizer_s2.nii.gz").exists()
    record = load_json(tmp_path / "out" / "dicom_series.json")
    assert record["SAX_LGE_PSIR_s12"]["series_instance_uid"] == "1.2.3.4.12"


def test_convert_dicom_writes_the_raw_layout_with_the_series_geometry(tmp_path: Path, pacs_export: tuple) -> None:
    root, geometries = pacs_export
    assert convert_main(["dicom", str(root), str(tmp_path / "raw")]) == 0
    image, geometry = io.read_image(tmp_path / "raw" / "imagesTs" / "SAX_LGE_PSIR_s12_0000.nii.gz")
    assert io.geometry_mismatch(geometry, geometries["SAX_LGE_PSIR_s12"], tolerance=1e-6) == []
    np.testing.assert_array_equal(image, np.load(root / "lge.npy"))
    dataset = load_json(tmp_path / "raw" / "dataset.json")
    assert dataset["vendor"] == "Phantom Medical" and dataset["field_strength"] == "1.5T"
    assert dataset["dicom_series"]["localizer_s2"]["series_instance_uid"] == "1.2.3.4.2"


def test_cine_phases_in_one_series_are_refused_by_name(tmp_path: Path) -> None:
    geometry = _oblique((2, 16, 16), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0))
    volume = np.zeros(geometry.shape)
    write_dicom_series(tmp_path / "a", volume, geometry, "1.2.3.9", 9, "cine")
    write_dicom_series(tmp_path / "b", volume, geometry, "1.2.3.9", 9, "cine")  # same positions again
    (series,) = find_series(tmp_path)
    with pytest.raises(ValueError, match="cine_s9.*several images share one slice position"):
        read_series(series)


def test_dicom_seg_references_the_source_slices_and_holds_the_label_map(
        tmp_path: Path, pacs_export: tuple, tiny_model: Path) -> None:
    highdicom = pytest.importorskip("highdicom")  # the optional extra lgeseg[dicom]; scripts/setup.sh installs it
    root, _ = pacs_export
    assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--series", "*LGE*",
                         "--disable_tta", "--dicom-seg", "--postprocess", "none"]) == 0
    label, _ = io.read_label(tmp_path / "out" / "SAX_LGE_PSIR_s12.nii.gz")
    seg = highdicom.seg.segread(tmp_path / "out" / "SAX_LGE_PSIR_s12.seg.dcm")
    sources = sorted(find_series(root)[1].files)
    import pydicom

    source_uids = [pydicom.dcmread(f).SOPInstanceUID for f in sources]
    assert {s.segment_label for s in seg.SegmentSequence} == {"blood pool", "myocardium"}
    present = sorted(int(v) for v in np.unique(label) if v)
    volume = seg.get_pixels_by_source_instance(source_uids, segment_numbers=present,
                                               combine_segments=True, skip_overlap_checks=True)
    expected = np.stack([label[z] for z in range(label.shape[0])])
    np.testing.assert_array_equal(np.asarray(volume), expected)


def test_dicom_seg_on_image_files_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("highdicom")
    geometry = _oblique((2, 16, 16), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0))
    io.write_image(tmp_path / "in" / "a_0000.nii.gz", np.zeros(geometry.shape, np.float32), geometry)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                         "--dicom-seg"]) == 1
    assert not (tmp_path / "out").exists()
